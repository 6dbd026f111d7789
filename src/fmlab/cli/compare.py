"""``fmlab compare RUN_A RUN_B [...]``: config diff, summary metrics with paired
differences, claims side by side and overlaid curves (an HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fmlab.cli.app import IMPORTS, app, emit_json, friendly, out, plain, warn
from fmlab.errors import UserInputError


@app.command()
@friendly
def compare(
    runs: list[Path] = typer.Argument(
        ..., metavar="RUN", help="two or more run directories (the first is A)"
    ),
    page: Path = typer.Option(Path("compare.html"), "--out", "-o", help="the HTML page to write"),
    imports: list[str] = IMPORTS,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare runs: what differs in their configs, their summary metrics with the
    difference to run A (a 95% CI paired over the seeds both ran), their claims side by
    side, and their curves overlaid in one HTML page."""
    from fmlab.report.compare_page import write_comparison
    from fmlab.store import is_run_dir
    from fmlab.study import import_modules

    import_modules(imports)
    if len(runs) < 2:
        raise UserInputError("give two run directories or more to compare")
    for r in runs:
        if not r.exists():
            raise UserInputError(f"{r} does not exist")
        if not is_run_dir(r):
            raise UserInputError(f"{r} is not a run directory (no config.json in it)")
    if len({r.resolve() for r in runs}) < len(runs):
        raise UserInputError("the same run directory is given twice")
    comp, target = write_comparison(runs, page)
    if len({r.study for r in comp.runs}) > 1:
        warn("these runs are of different studies: only what they share is compared")
    if as_json:
        return emit_json({**comp.as_dict(), "page": str(target)})
    _print(comp)
    out.print(plain(f"page: {target}"))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else str(value)


def _print(comp: Any) -> None:
    for label, r in zip(comp.labels, comp.runs, strict=True):
        status = (r.summary or {}).get("status", "unfinished")
        out.print(plain(f"{label}: {r.study} · {r.run_id} · {status} · {r.path}"))
    if comp.config_diff:
        table = Table(title="config differences")
        table.add_column("key", overflow="fold")
        for label in comp.labels:
            table.add_column(label, overflow="fold")
        for d in comp.config_diff:
            table.add_row(plain(d["key"]), *(plain(_cell(v)) for v in d["values"]))
        out.print(table)
    else:
        out.print(plain("configs: identical"))
    if comp.metrics:
        table = Table(title="summary metrics (differences to A: paired over matching seeds)")
        table.add_column("metric", overflow="fold")
        for label in comp.labels:
            table.add_column(label, justify="right")
        for label in comp.labels[1:]:
            table.add_column(f"{label} − A [95% CI]", justify="right")
        for m in comp.metrics:
            values = [_with_ci(c["value"], c["low"], c["high"]) for c in m["runs"]]
            table.add_row(
                plain(m["metric"]), *map(plain, values), *map(plain, map(_diff, m["diffs"]))
            )
        out.print(table)
    if comp.claims:
        table = Table(title="claims")
        table.add_column("claim", overflow="fold")
        table.add_column("threshold")
        for label in comp.labels:
            table.add_column(label, overflow="fold")
        for c in comp.claims:
            table.add_row(
                plain(c["id"]), plain(c["threshold"]), *map(plain, map(_verdict, c["runs"]))
            )
        out.print(table)


def _with_ci(value: Any, low: Any, high: Any) -> str:
    text = _cell(value)
    return f"{text} [{_cell(low)}, {_cell(high)}]" if low is not None and high is not None else text


def _diff(d: dict[str, Any] | None) -> str:
    if d is None:
        return "–"
    text = _with_ci(d["estimate"], d["low"], d["high"])
    return f"{text} (paired, n={d['n']})" if d["paired"] else f"{text} (unpaired)"


def _verdict(result: dict[str, Any] | None) -> str:
    if result is None:
        return "not stated"
    mark = {True: "holds", False: "fails"}.get(result["passed"], "n/a")
    why = f" — {result['reason']}" if result["passed"] is not True and result["reason"] else ""
    return f"{mark} {_cell(result['value'])}{why}"
