"""``fmlab show RUN [--follow]``: a finished run's claims and metrics, or where an
unfinished one stands — running (whose process, which step, eta, the latest numbers) or
stopped (rerun it to resume) — and, with ``--follow``, its progress until it ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fmlab.cli.app import IMPORTS, app, emit_json, fail, friendly, out, plain
from fmlab.cli.core import _claims_table, _number
from fmlab.store import read_config, read_summary


def run_state(run_dir: Path) -> dict[str, Any]:
    """``{status, owner…, label, step, total, eta_s, latest}`` of a run directory."""
    from fmlab.lease import current_lease
    from fmlab.live import snapshot

    summary = read_summary(run_dir)
    if summary is not None:
        return {"status": summary["status"], "summary": summary}
    read_config(run_dir)  # not a run directory: a clear error
    lease = current_lease(run_dir)
    live = lease is not None and lease.live()
    snap = snapshot(run_dir)
    state: dict[str, Any] = {
        "status": "running" if live else "unfinished",
        "label": snap.label,
        "step": snap.step,
        "total": snap.total,
        "eta_s": snap.eta_s,
        "latest": snap.latest,
    }
    if live:
        state |= {"pid": lease.pid, "host": lease.host}
    return state


def _line(state: dict[str, Any]) -> str:
    from fmlab.live import Snapshot, describe

    snap = Snapshot(state["label"], state["step"], state["total"], state["eta_s"],
                    state["latest"], 0)  # fmt: skip
    who = f"running (pid {state['pid']} on {state['host']})" if "pid" in state else "not running"
    return f"{who} · {describe(snap)}"


@app.command()
@friendly
def show(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    follow: bool = typer.Option(False, "--follow", "-f", help="follow a running run to its end"),
    interval: float = typer.Option(2.0, "--interval", min=0.1, help="seconds between looks"),
    imports: list[str] = IMPORTS,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show a run's summary and claims, or the progress of an unfinished run."""
    from fmlab.study import import_modules

    import_modules(imports)
    state = run_state(run_dir)
    if follow and "summary" not in state:
        state = _follow(run_dir, interval, as_json)
    if "summary" not in state:
        if as_json:
            emit_json(state)
        else:
            out.print(plain(_line(state)))
        if state["status"] == "unfinished":
            if as_json:
                raise typer.Exit(1)
            raise fail(f"{run_dir} has not finished and nothing runs it: rerun its command "
                       "to resume it from its checkpoints", 1)  # fmt: skip
        return None
    summary = state["summary"]
    if as_json:
        return emit_json(summary)
    title = _title(summary.get("study"))
    if title:
        out.print(plain(title), style="bold")
    out.print(_claims_table(summary))
    scalars = {k: v for k, v in summary["metrics"].items() if not isinstance(v, list)}
    table = Table(title="metrics")
    table.add_column("metric")
    table.add_column("value")
    for key, value in scalars.items():
        table.add_row(plain(key), plain(_number(value)))
    out.print(table)
    out.print(plain(f"wall {summary.get('wall_s')} s · env {summary.get('env')}"))


def _title(name: Any) -> str | None:
    """The study's title when it is registered already (a user's study, by its --import;
    bundled studies are not imported just for a title: show stays fast under --follow)."""
    from fmlab.study import STUDIES

    return STUDIES.get(str(name)).title if str(name) in STUDIES else None


def _follow(run_dir: Path, interval: float, as_json: bool) -> dict[str, Any]:
    """Print a line whenever the run's progress changes, until it finishes or stops."""
    last = None
    try:
        while True:
            state = run_state(run_dir)
            if "summary" in state or state["status"] != "running":
                return state
            line = _line(state)
            if line != last and not as_json:
                out.print(plain(line))
                last = line
            time.sleep(interval)
    except KeyboardInterrupt:
        return run_state(run_dir)
