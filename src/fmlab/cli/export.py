"""``fmlab export``: a run's GPT as a Hugging Face model, or finished runs to a tracker.

``fmlab export RUN_DIR OUT_DIR`` writes a run's GPT as a ``GPT2LMHeadModel`` directory
holding ``config.json``, ``model.safetensors`` and a word-level tokenizer (``t0`` …
``t{V-1}``), so ``transformers``, ``peft`` and ``fmlab inspect OUT_DIR`` read it;
:func:`fmlab.models.hf.export.load_gpt` reads it back into fmlab. Only configs that map
exactly are exported (:mod:`fmlab.models.hf.export` says which); others are refused in
one line.

``fmlab export RUNS... --to mlflow|tensorboard|wandb[=TARGET]`` sends finished runs (run
directories, or folders holding them) to experiment trackers (:mod:`fmlab.trackers`):
config, curves, summary metrics and claims, as ``--log-to`` would have streamed them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from fmlab.cli.app import app, emit_json, fail, friendly, out, plain


@app.command()
@friendly
def export(
    paths: list[Path] = typer.Argument(
        ...,
        help="RUN_DIR OUT_DIR (a transformers model), or with --to: runs and folders of runs",
    ),
    to: list[str] = typer.Option(
        [],
        "--to",
        help="send finished runs to a tracker: mlflow | tensorboard | wandb, optionally "
        "=DIR or =URI (default: under the runs directory); repeatable",
    ),
    weights: str | None = typer.Option(
        None, "--weights", "-w", help="which artifacts/<name>.safetensors, if it has several"
    ),
    as_json: bool = typer.Option(False, "--json", help="print what was written as JSON"),
) -> None:
    """Write a run's GPT as a transformers GPT2LMHeadModel directory (exact: same logits),
    or (--to) send finished runs to TensorBoard, MLflow or W&B."""
    if to:
        if weights is not None:
            raise fail("--weights is for a model export (RUN_DIR OUT_DIR), not with --to")
        return _to_trackers(paths, to, as_json)
    if len(paths) != 2:
        raise fail(
            "give RUN_DIR OUT_DIR to export a model, or runs with --to mlflow|tensorboard|wandb "
            f"to send them to a tracker (got {len(paths)} paths)"
        )
    from fmlab.models.hf.export import describe, export_run

    path = export_run(paths[0], paths[1], weights)
    info = {"path": str(path), **describe(path)}
    if as_json:
        return emit_json(info)
    arch = ", ".join(info["architectures"] or [])
    out.print(plain(f"wrote {arch} ({info['n_layer']} layers, width {info['n_embd']}, "
                    f"vocabulary {info['vocab_size']}) to {path}"))  # fmt: skip


def _to_trackers(paths: list[Path], to: list[str], as_json: bool) -> None:
    from fmlab.contracts import CorruptFileError
    from fmlab.store import find_runs, read_summary, skip
    from fmlab.trackers import export_run, parse_specs

    specs = parse_specs(to, flag="--to")
    runs = []
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(2, "No such file or directory", str(p))
        found = find_runs(p)
        if not found:
            raise fail(f"{p}: no run directories (with config.json) under it")
        runs += found
    done: list[dict[str, Any]] = []
    skipped = []
    for run_dir in runs:
        try:
            finished = read_summary(run_dir) is not None
        except CorruptFileError as e:  # one broken run among many: say so, send the rest
            if len(runs) == 1:
                raise
            skip(e)
            continue
        if not finished:  # unfinished: nothing final to send
            skipped.append(str(run_dir))
            continue
        for spec in specs:
            target = export_run(run_dir, spec)
            done.append({"run": str(run_dir), "tracker": spec.name, "target": target})
    if as_json:
        return emit_json({"exported": done, "skipped_unfinished": skipped})
    for d in done:
        out.print(plain(f"{d['tracker']}: {d['run']} → {d['target']}"))
    for s in skipped:
        out.print(plain(f"skipped (not finished): {s}"))
    if not done:
        raise fail("no finished run among the paths given")
