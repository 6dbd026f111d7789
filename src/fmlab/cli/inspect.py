"""``fmlab inspect MODEL --instrument NAME``: one registered instrument on every layer."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from fmlab.cli.app import (
    DEVICE,
    IMPORTS,
    app,
    emit_json,
    err,
    friendly,
    out,
    plain,
    report_failure,
    say,
)
from fmlab.config import validate
from fmlab.instruments import INSTRUMENTS
from fmlab.parallel import default_threads
from fmlab.stats.seeds import SUFFIXES

INSTRUMENT_HELP = "; ".join(f"{name}: {spec.help}" for name, spec in INSTRUMENTS.items())


@app.command()
@friendly
def inspect(
    model: str = typer.Argument(
        ..., help="minilm, tiny-gpt2|opt|llama|bert, a directory or a hub id"
    ),
    instrument: str = typer.Option("cka", "--instrument", "-i", help=INSTRUMENT_HELP),
    data: str = typer.Option(
        "sentences", "--data", "-d", help="builtin (sentences) or a .txt/.jsonl file"
    ),
    compare: str | None = typer.Option(
        None, "--compare", help="second model for model × model CKA"
    ),
    task: str = typer.Option("auto", "--task", help="auto | base | causal-lm | masked-lm | …"),
    overrides: list[str] = typer.Option([], "--set", "-s", help="e.g. label=tense, reduce=mean"),
    out_dir: Path = typer.Option(Path("runs"), "--out", "-o", help="runs directory"),
    force: bool = typer.Option(False, "--force", help="rerun even if this config finished"),
    allow_unsafe_pickle: bool = typer.Option(
        False, "--allow-unsafe-pickle", help="load pickle weights (weights_only)"
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="run the model's own Python code"
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="torch threads (default: the cores not busy)",
    ),
    imports: list[str] = IMPORTS,
    device: str = DEVICE,
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Run one instrument on every layer of a model; write a run directory and a report."""
    from fmlab.catalog import get_study
    from fmlab.device import resolve
    from fmlab.progress import progress_for
    from fmlab.report import write_run_report
    from fmlab.runner import execute
    from fmlab.study import import_modules

    import_modules(imports)
    spec = get_study("inspect")
    fields = {
        "model": model,
        "instrument": instrument,
        "data": data,
        "compare": compare,
        "task": task,
        "allow_unsafe_pickle": allow_unsafe_pickle,
        "trust_remote_code": trust_remote_code,
    }
    cfg = validate(spec.config, fields).override(*overrides)
    _precheck(cfg)
    import torch

    torch.set_num_threads(threads or default_threads())
    progress = progress_for(err, as_json)
    with progress as bars:
        result = execute(
            spec, cfg, out_dir, force=force, progress=bars, reraise=True, device=resolve(device)
        )
    summary = {**result.summary, "path": str(result.path), "reused": result.reused}
    summary["report"] = str(write_run_report(result.path, spec))
    if as_json:
        emit_json(summary)
    else:
        _show(summary, f"inspect · {cfg.model} · {cfg.instrument} · {summary['status']}")
    if result.status == "failed":
        raise report_failure(result.summary, result.path)


def _show(summary: dict, title: str) -> None:
    if summary["reused"]:
        say(err, "already finished", "yellow", f"(use --force to rerun): {summary['path']}")
    table = Table(title=escape(title))
    table.add_column("metric")
    table.add_column("value")
    for key, value in summary["metrics"].items():
        if not key.endswith(SUFFIXES):
            shown = "–" if value is None else f"{value:.4g}" if isinstance(value, float) else value
            table.add_row(plain(key), plain(shown))
    out.print(table)
    out.print(plain(f"run directory: {summary['path']}\nreport: {summary['report']}"))


def _precheck(cfg) -> None:
    """Refuse bad input before a run directory exists: unknown data or label, a model
    that cannot be found, or one the safety rules refuse (pickle, remote code)."""
    from fmlab.data import load_texts
    from fmlab.models.hf import check_directory, check_tiny, resolve

    data = load_texts(cfg.data)
    check = INSTRUMENTS.get(cfg.instrument).check
    if check is not None:
        check(cfg, data)
    for name in filter(None, (cfg.model, cfg.compare)):
        if name.startswith("tiny-"):
            check_tiny(name.removeprefix("tiny-"))
            continue
        path = resolve(
            name,
            allow_unsafe_pickle=cfg.allow_unsafe_pickle,
            trust_remote_code=cfg.trust_remote_code,
        )
        check_directory(
            path,
            allow_unsafe_pickle=cfg.allow_unsafe_pickle,
            trust_remote_code=cfg.trust_remote_code,
        )
