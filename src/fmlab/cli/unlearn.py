"""``fmlab unlearn MODEL --forget FILE --method npo``: unlearn a user's facts from a
causal LM (the ``unlearning`` study with ``source=MODEL``), writing a run directory.

    fmlab unlearn ./my-model --forget forget.jsonl --retain retain.jsonl --method npo_rt
    fmlab unlearn tiny-gpt2 --forget forget.jsonl --holdout unseen.jsonl --method ga,npo

Facts are JSONL, one ``{"question": …, "answer": …}`` a line (optional
``paraphrased_answer`` and ``perturbed_answer`` for the truth ratio); a malformed line
is one error naming it. With ``--retain`` the run also measures utility on retain facts
(and methods with a retain term can run); with ``--holdout`` membership inference.
There is no retrained model here, so no forget quality (docs/unlearning.md).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import typer
from rich.table import Table

from fmlab.cli.app import DEVICE, app, emit_json, err, fail, friendly, out, plain, say


def _digest(paths: list[Path | None]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes() if p is not None else b"-")
    return h.hexdigest()[:16]


@app.command()
@friendly
def unlearn(
    model: str = typer.Argument(..., help="a causal LM: model directory, cached hub id, tiny-gpt2"),
    forget: Path = typer.Option(..., "--forget", help="JSONL facts to forget"),
    retain: Path | None = typer.Option(None, "--retain", help="JSONL facts to keep"),
    holdout: Path | None = typer.Option(None, "--holdout", help="JSONL facts never trained on"),
    method: str = typer.Option(
        "npo",
        "--method",
        "-m",
        help="ga|grad_diff|kl|npo|npo_rt|simnpo, or several, comma-separated",
    ),
    steps: int = typer.Option(20, "--steps", min=0, help="unlearning steps"),
    lr: float = typer.Option(1e-5, "--lr", min=0.0, help="AdamW learning rate"),
    beta: float | None = typer.Option(None, "--beta", min=0.0, help="NPO's β [0.1]"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    eval_every: int = typer.Option(5, "--eval-every", min=1),
    seed: int = typer.Option(0, "--seed", help="batch order (and a tiny model's init)"),
    out_dir: Path = typer.Option(Path("runs"), "--out", "-o", help="runs directory"),
    force: bool = typer.Option(False, "--force", help="rerun even if this config finished"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch threads"),
    device: str = DEVICE,
    allow_unsafe_pickle: bool = typer.Option(False, "--allow-unsafe-pickle"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Unlearn FILE's facts from MODEL with each method; print forget/utility/MIA numbers."""
    import torch

    from fmlab.catalog import get_study
    from fmlab.config import apply_overrides
    from fmlab.device import resolve
    from fmlab.parallel import default_threads
    from fmlab.runner import execute

    for path in (forget, retain, holdout):
        if path is not None and not path.is_file():
            raise fail(f"{path}: no such file")
    methods = [m.strip() for m in method.split(",") if m.strip()]
    unlearn_cfg = {"steps": steps, "lr": lr, "batch_size": batch_size, "eval_every": eval_every}
    if beta is not None:
        unlearn_cfg["beta"] = beta
    spec = get_study("unlearning")
    cfg = apply_overrides(
        spec.preset("quick"),
        {
            "source": model,
            "forget_file": str(forget.resolve()),
            "retain_file": str(retain.resolve()) if retain else None,
            "holdout_file": str(holdout.resolve()) if holdout else None,
            "facts_digest": _digest([forget, retain, holdout]),
            "methods": methods,
            "seeds": [seed],
            "unlearn": unlearn_cfg,
            "allow_unsafe_pickle": allow_unsafe_pickle,
            "trust_remote_code": trust_remote_code,
        },
    )
    resolve(device)
    torch.set_num_threads(threads or default_threads())
    result = execute(spec, cfg, out_dir, force=force, device=device)
    summary = {**result.summary, "path": str(result.path), "reused": result.reused}
    if result.status == "failed":  # a malformed fact file: its line, named (facts.read_facts)
        lines = (summary.get("error") or "").strip().splitlines()
        last = re.sub(r"^[\w.]*UserInputError: ", "", lines[-1]) if lines else ""
        raise fail(last or f"the run failed: {result.path}")
    if as_json:
        return emit_json(summary)
    if result.reused:
        say(err, "already finished", "yellow", f"(use --force to rerun): {result.path}")
    metrics = summary.get("metrics", {})
    table = Table(title=f"unlearning {model}")
    table.add_column("metric")
    table.add_column("value")
    for k, v in metrics.items():
        if isinstance(v, float):
            table.add_row(plain(k), plain(f"{v:.4g}"))
    out.print(table)
    out.print(plain(f"run directory: {result.path}"))
