"""``fmlab list | run | show | report | reproduce``."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from fmlab.cli.app import (
    CHECKPOINT_EVERY,
    DEVICE,
    IMPORTS,
    NO_CHECKPOINT,
    app,
    emit_json,
    err,
    execution_options,
    fail,
    friendly,
    out,
    plain,
    report_failure,
    say,
    warn,
)
from fmlab.cli.tracking import LOG_TO, log_to, reused_hint
from fmlab.contracts import CorruptFileError
from fmlab.parallel import default_threads
from fmlab.store import find_runs, is_run_dir, skip


def _number(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.6g}" if isinstance(value, int | float) else str(value)


def _claims_table(summary: dict[str, Any]) -> Table:
    from fmlab.claims import shown_ci

    title = f"{summary.get('study')} · {summary.get('run_id')} · {summary.get('status')}"
    table = Table(title=escape(title))
    for col in ("", "claim", "measured [95% CI]", "threshold", "source"):
        table.add_column(col, no_wrap=col == "claim")  # a claim's name is shown whole
    for c in summary.get("claims", []):
        mark = {True: "[green]holds[/]", False: "[red]fails[/]"}.get(c["passed"], "[dim]n/a[/]")
        value = "–" if c["value"] is None else f"{c['value']:.4g}"
        ci = shown_ci(c)  # a fraction's interval inside [0, 1], also from older summaries
        if ci:
            value += f" [{ci[0]:.4g}, {ci[1]:.4g}]"
        table.add_row(mark, *map(plain, (c["id"], value, c["threshold"], c["source"])))
    return table


@app.command("list")
@friendly
def list_(
    imports: list[str] = IMPORTS,
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List the studies (with presets and claims), mixers, tasks, instruments, executors
    and suites."""
    from fmlab.catalog import all_studies
    from fmlab.instruments import INSTRUMENTS
    from fmlab.models import MIXERS
    from fmlab.study import import_modules
    from fmlab.suites import SUITES
    from fmlab.sweep.executors import EXECUTORS
    from fmlab.tasks import task_names
    from fmlab.trackers import TRACKERS

    import_modules(imports)

    studies = [
        {
            "name": s.name,
            "title": s.title,
            "presets": list(s.presets),
            "claims": [c.id for c in s.claims],
            "citation": s.citation,
        }
        for s in all_studies()
    ]
    registries = {
        "mixers": MIXERS.names(),
        "tasks": list(task_names()),
        "instruments": INSTRUMENTS.names(),
        "executors": EXECUTORS.names(),
        "suites": SUITES.names(),
        "trackers": TRACKERS.names(),
    }
    if as_json:
        return emit_json({"studies": studies, **registries})
    table = Table(title="Studies")
    for col in ("study", "title", "presets", "claims"):
        # names whole (one a line); in a narrow terminal the title wraps, never cut
        table.add_column(col, no_wrap=col in ("study", "claims"), overflow="fold")
    for s in studies:
        cells = (s["name"], s["title"], ", ".join(s["presets"]), "\n".join(s["claims"]))
        table.add_row(*map(plain, cells))
    out.print(table)
    for name, names in registries.items():
        say(out, f"{name}:", "bold", ", ".join(names))


@app.command()
@friendly
def run(
    study: str = typer.Argument(..., help="study name (see `fmlab list`)"),
    preset: str = typer.Option("quick", "--preset", "-p", help="smoke | quick | paper"),
    overrides: list[str] = typer.Option([], "--set", "-s", help="override, e.g. train.lr=1e-3"),
    out_dir: Path = typer.Option(Path("runs"), "--out", "-o", help="runs directory"),
    force: bool = typer.Option(False, "--force", help="rerun even if this config finished"),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="torch threads (default: the cores not busy)",
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="write report.html"),
    imports: list[str] = IMPORTS,
    device: str = DEVICE,
    checkpoint_every: float = CHECKPOINT_EVERY,
    no_checkpoint: bool = NO_CHECKPOINT,
    log_to_: list[str] = LOG_TO,
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Run one study with a preset and overrides; print its claims. A killed or stopped
    run (Ctrl-C, SIGTERM) resumes from its checkpoints when the same command is rerun."""
    from fmlab.catalog import get_study
    from fmlab.progress import progress_for
    from fmlab.report import write_run_report
    from fmlab.runner import execute
    from fmlab.study import import_modules

    import_modules(imports)
    spec = get_study(study)
    cfg = spec.resolve(preset, overrides)
    how = execution_options(device, checkpoint_every, no_checkpoint)
    how["trackers"] = log_to(log_to_, out_dir)
    import torch

    torch.set_num_threads(threads or default_threads())
    progress = progress_for(err, as_json)
    with progress as bars:
        result = execute(spec, cfg, out_dir, force=force, progress=bars, preset=preset, **how)
    if report:
        result.summary["report"] = str(write_run_report(result.path, spec))
    summary = {**result.summary, "path": str(result.path), "reused": result.reused}
    if as_json:
        emit_json(summary)
    else:
        if result.reused:
            say(err, "already finished", "yellow", f"(use --force to rerun): {result.path}")
            if how["trackers"]:
                err.print(plain(reused_hint(result.path, how["trackers"])))
        out.print(_claims_table(summary))
        out.print(plain(f"run directory: {result.path}"))
        if report:
            out.print(plain(f"report: {summary['report']}"))
    if result.status == "failed":
        raise report_failure(result.summary, result.path)


@app.command()
@friendly
def report(
    paths: list[Path] = typer.Argument(..., help="run directories or folders holding runs"),
    index: Path | None = typer.Option(None, "--index", help="also write an index page here"),
    imports: list[str] = IMPORTS,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write report.html (+ PNG/SVG figures) for each run; optionally an index."""
    from fmlab.report import write_index, write_run_report
    from fmlab.study import import_modules

    import_modules(imports)
    run_dirs, reports = [], []
    for r in (r for p in paths for r in _existing(p)):
        try:
            reports.append(str(write_run_report(r, _study_of(r))))
            run_dirs.append(r)
        except CorruptFileError as e:
            if len(paths) == 1 and is_run_dir(paths[0]):
                raise
            skip(e)
    if not run_dirs:
        raise fail("no readable run directory among the paths given (see the warnings)")
    result: dict[str, Any] = {"reports": reports}
    if index is not None or len(run_dirs) > 1:
        target = index or Path(paths[0]) / "index.html"
        result["index"] = str(write_index(run_dirs, target))
    sweeps = [p for p in paths if (Path(p) / "sweep.json").is_file()]
    if sweeps:  # a sweep directory also gets its page: metrics against the swept keys
        from fmlab.sweep.report import write_sweep_report

        result["sweeps"] = [str(write_sweep_report(p)) for p in sweeps]
    if as_json:
        return emit_json(result)
    for r in reports:
        out.print(plain(f"report: {r}"))
    if "index" in result:
        out.print(plain(f"index: {result['index']}"))
    for page in result.get("sweeps", []):
        out.print(plain(f"sweep: {page}"))


def _study_of(run_dir: Path) -> Any:
    """The study that made a run, for its title and figures; None (with a warning) when it
    is not registered here (a user's study: pass its --import)."""
    from fmlab.catalog import get_study
    from fmlab.registry import UnknownNameError
    from fmlab.store import RunData

    name = RunData(run_dir).study
    try:
        return get_study(name)
    except UnknownNameError:
        warn(
            f"study {name!r} of {run_dir} is not registered here (--import its module for "
            "its figures); writing the report without them"
        )
        return None


def _suite_bar(bars: Any, suite: str, total: int) -> Any:
    """One bar counting finished studies (the runs' own bars live in the workers)."""
    return bars.task(f"suite {suite}", total) if bars is not None else nullcontext(lambda _: None)


def _existing(path: Path) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    runs = find_runs(path)
    if not runs:
        raise FileNotFoundError(f"no run directories (with config.json) under {path}")
    return runs


@app.command()
@friendly
def reproduce(
    suite: str = typer.Option("demo", "--suite", help="demo | quick | smoke"),
    out_dir: Path = typer.Option(Path("runs"), "--out", "-o"),
    force: bool = typer.Option(False, "--force"),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        help="studies run at once (default: one per core, at most one each)",
    ),
    device: str = DEVICE,
    checkpoint_every: float = CHECKPOINT_EVERY,
    no_checkpoint: bool = NO_CHECKPOINT,
    log_to_: list[str] = LOG_TO,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run a suite of studies and write one HTML index of their reports."""
    from fmlab.progress import progress_for
    from fmlab.report import write_index
    from fmlab.suites import run_item, run_parallel, suite_items
    from fmlab.sweep.executors import available_cores, plan_threads

    items = suite_items(suite)
    how = execution_options(device, checkpoint_every, no_checkpoint)
    how["trackers"] = log_to(log_to_, out_dir)
    jobs = jobs if jobs is not None else max(1, min(len(items), available_cores()))
    threads = plan_threads(jobs, None)
    done: dict[int, Any] = {}
    if jobs == 1:
        progress = progress_for(err, as_json)
        with progress as bars:
            for i, item in enumerate(items):
                if not as_json:
                    say(err, item.study, "bold", f"· preset {item.preset}")
                done[i] = run_item(item, out_dir, force, bars, how)
    else:
        if not as_json:
            names = ", ".join(f"{i.study} ({i.preset})" for i in items)
            err.print(plain(f"running {names} in {jobs} processes × {threads} torch threads"))
        progress = progress_for(err, as_json)
        with progress as bars, _suite_bar(bars, suite, len(items)) as advance:
            parallel = run_parallel(
                items, out_dir, jobs=jobs, threads=threads, force=force, execution=how
            )
            for i, result in parallel:
                done[i] = result
                advance(None)
                if not as_json:
                    say(err, items[i].study, "bold", f"· {result.status} · {result.path}")
    results = [done[i] for i in range(len(items))]
    index = write_index(
        [r.path for r in results],
        out_dir / "report" / "index.html",
        title=f"fmlab reproduce --suite {suite}",
    )
    rows = [
        {
            "study": r.summary["study"],
            "preset": r.summary.get("preset"),
            "status": r.status,
            "path": str(r.path),
            "claims": {c["id"]: c["passed"] for c in r.summary["claims"]},
        }
        for r in results
    ]
    if as_json:
        emit_json({"suite": suite, "index": str(index), "runs": rows})
    else:
        for r in results:
            out.print(_claims_table(r.summary))
        out.print(plain(f"index: {index}"))
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)
