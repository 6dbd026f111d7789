"""``fmlab sweep | status | table``: many runs of a study, resumable, local or on a cluster."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fmlab.cli.app import (
    CHECKPOINT_EVERY,
    DEVICE,
    IMPORTS,
    NO_CHECKPOINT,
    app,
    emit_json,
    err,
    fail,
    friendly,
    out,
    plain,
    say,
    show_progress,
)
from fmlab.cli.executor_flags import chosen_options, with_executor_flags
from fmlab.cli.tracking import LOG_TO, log_to
from fmlab.errors import UserInputError
from fmlab.sweep.executors import EXECUTORS
from fmlab.sweep.record import sweep_dir

OUT = typer.Option(Path("runs"), "--out", "-o", help="runs root; sweeps live in OUT/sweeps/NAME")


def _spec_from_options(study: str | None, resume: str | None, out_dir: Path, o: dict[str, Any]):
    """The spec and directory: from the command line, or from a saved sweep (--resume)."""
    from fmlab.sweep.record import find_sweep, read_record
    from fmlab.sweep.spec import SweepSpec, parse_axes, parse_random, sweep_spec

    axes_given = any(o[k] for k in ("grid", "zip", "random", "seeds", "overrides"))
    if resume is not None:
        if study is not None or axes_given:
            raise UserInputError(
                "--resume takes the spec from sweep.json: give no STUDY, --grid, --zip, "
                "--random, --seeds or --set (or rerun the original command); --import only "
                "the modules you trust, as on the first run (none is imported otherwise)"
            )
        directory = find_sweep(resume, out_dir)
        return SweepSpec.model_validate(read_record(directory)["spec"]), directory
    if study is None:
        raise UserInputError("give a STUDY (see `fmlab list`) or --resume SWEEP")
    spec = sweep_spec(
        study,
        o["preset"],
        grid=parse_axes(o["grid"], "--grid"),
        zip=parse_axes(o["zip"], "--zip"),
        random=parse_random(o["random"]),
        samples=o["samples"],
        sample_seed=o["sample_seed"],
        seeds=o["seeds"],
        overrides=o["overrides"],
        imports=o["imports"],
    )
    return spec, None


@app.command()
@friendly
@with_executor_flags
def sweep(
    study: str | None = typer.Argument(None, help="study name (see `fmlab list`)"),
    preset: str = typer.Option("quick", "--preset", "-p", help="smoke | quick | paper"),
    grid: list[str] = typer.Option([], "--grid", help="key=v1,v2,… (Cartesian product)"),
    zip_: list[str] = typer.Option([], "--zip", help="key=v1,v2,… (walked in lock-step)"),
    random: list[str] = typer.Option(
        [], "--random", help="key=uniform:lo:hi | loguniform:lo:hi | int:lo:hi | choice:a|b"
    ),
    samples: int = typer.Option(0, "--samples", min=0, help="number of random draws"),
    sample_seed: int = typer.Option(0, "--sample-seed", help="seed of the random draws"),
    seeds: int | None = typer.Option(None, "--seeds", help="K seeds 0..K-1 of every point"),
    overrides: list[str] = typer.Option([], "--set", "-s", help="key=value for every point"),
    imports: list[str] = IMPORTS,
    name: str | None = typer.Option(None, "--name", help="sweep name (default STUDY-PRESET)"),
    out_dir: Path = OUT,
    resume: str | None = typer.Option(None, "--resume", help="resume a sweep (name or dir)"),
    executor: str | None = typer.Option(
        None,
        "--executor",
        "-e",
        help=f"{' | '.join(EXECUTORS.names())} (default: local if -j>1, else serial)",
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="parallel workers / SLURM array width"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch threads per worker"),
    ensemble: str = typer.Option("auto", "--ensemble", help="auto | off: batch ensemble groups"),
    ensemble_size: int | None = typer.Option(None, "--ensemble-size", min=1, help="max group size"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="rerun failed runs"),
    allow_changed: bool = typer.Option(False, "--allow-changed", help="accept a changed spec"),
    lease_ttl: float = typer.Option(60.0, "--lease-ttl", help="seconds before a claim expires"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and list the runs only"),
    device: str = DEVICE,
    checkpoint_every: float = CHECKPOINT_EVERY,
    no_checkpoint: bool = NO_CHECKPOINT,
    log_to_: list[str] = LOG_TO,
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    executor_flags: dict | None = None,
) -> None:
    """Run a study over a grid/zip/random set of configs and seeds; rerun to resume.

    Each executor's own options are flags --<executor>-<option> (listed below by executor).
    """
    from fmlab.sweep.driver import SweepInterrupted, run_sweep

    axes = {
        "preset": preset,
        "grid": grid,
        "zip": zip_,
        "random": random,
        "samples": samples,
        "sample_seed": sample_seed,
        "seeds": seeds,
        "overrides": overrides,
        "imports": imports,
    }
    spec, directory = _spec_from_options(study, resume, out_dir, axes)
    if ensemble not in ("auto", "off"):  # checked here too: before a dry run
        raise UserInputError(f"--ensemble {ensemble!r}: choose auto or off")
    if executor is None:
        executor = "local" if jobs > 1 else "serial"
    executor_options = chosen_options(executor, executor_flags or {})
    check_device(device, here=executor in ("serial", "local"))
    log_to(log_to_, out_dir)  # a tracker's name or missing library: one line, before a dry run
    if not 0 < lease_ttl < float("inf"):
        raise UserInputError(f"--lease-ttl must be a finite number > 0 seconds, got {lease_ttl}")
    if directory is None:  # a bad --name fails here, before a dry run as before a run
        sweep_dir(out_dir, f"{spec.study}-{spec.preset}" if name is None else name)
    if dry_run:
        return _dry_run(spec, imports, as_json)
    bar = _SweepBar(enabled=show_progress(as_json))
    try:
        with bar:
            result = run_sweep(
                spec,
                name=name,
                out=out_dir,
                directory=directory,
                executor=executor,
                jobs=jobs,
                threads=threads,
                retry_failed=retry_failed,
                allow_changed=allow_changed,
                ensemble=ensemble,  # type: ignore[arg-type]
                ensemble_size=ensemble_size,
                lease_ttl=lease_ttl,
                executor_options=executor_options,
                imports=imports,
                device=device,
                checkpoint_every=None if no_checkpoint else checkpoint_every,
                trackers=log_to_,
                on_start=bar.start,
                on_outcome=bar.advance,
            )
    except SweepInterrupted as stop:
        _report(stop.result, as_json)
        say(err, "interrupted:", "yellow", "finished runs are kept; rerun the same command")
        raise typer.Exit(130) from None
    _report(result, as_json)
    if result.count("failed") or result.count("crashed"):
        raise typer.Exit(1)


def check_device(device: str, *, here: bool) -> None:
    """A device the runs can use: it must exist here when they run here; for a cluster's
    executor it is only parsed (the login node may have no GPU; the workers resolve it)."""
    from fmlab.device import CHOICES, resolve

    if here:
        resolve(device)
        return
    try:
        if device.strip().lower() != "auto":
            import torch

            torch.device(device)
    except RuntimeError:
        raise UserInputError(f"--device {device!r}: choose {CHOICES}") from None


def _dry_run(spec: Any, imports: list[str], as_json: bool) -> None:
    from fmlab.sweep.spec import plan

    p = plan(spec, imports)
    rows = [{"run_id": pt.run_id, **pt.values} for pt in p.points]
    if as_json:
        return emit_json({"study": spec.study, "runs": rows, "duplicates": p.duplicates})
    table = Table(title=escape(f"{spec.study} · {len(rows)} runs (dry run)"))
    for col in ["run_id", *p.swept_keys]:
        table.add_column(escape(col))
    for row in rows:
        table.add_row(*[plain(row.get(c, "")) for c in ["run_id", *p.swept_keys]])
    out.print(table)


def _report(result: Any, as_json: bool) -> None:
    data = result.as_dict()
    if as_json:
        return emit_json(data)
    out.print(
        plain(
            f"sweep {result.directory}: {data['total']} runs · already done "
            f"{data['already_done']} · ran {data['ran']} (completed {data['completed']}, "
            f"diverged {data['diverged']}, failed {data['failed']}) · crashed {data['crashed']}"
        )
    )
    for o in result.outcomes:
        if o.status in ("failed", "crashed") and o.error:
            last = o.error.strip().splitlines()[-1]
            say(err, o.status, "red", f"{o.run_id}: {last}")
    out.print(plain(f"results: fmlab table {result.directory}"))


class _SweepBar:
    """A rich bar of finished runs out of the sweep's total (on a terminal only)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._bars = Progress(
            TextColumn("[bold]sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        )
        self._task: Any = None

    def __enter__(self) -> _SweepBar:
        if self.enabled:
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bars.stop()

    def start(self, total: int, done: int) -> None:
        if self.enabled:
            self._task = self._bars.add_task("sweep", total=total, completed=done)

    def advance(self, outcome: Any) -> None:
        if self.enabled and self._task is not None:
            self._bars.advance(self._task)


@app.command()
@friendly
def status(
    sweep_name: str = typer.Argument(..., metavar="SWEEP", help="sweep name or directory"),
    out_dir: Path = OUT,
    watch: bool = typer.Option(False, "--watch", help="follow a running sweep until it ends"),
    interval: float = typer.Option(1.0, "--interval", help="seconds between looks (--watch)"),
    imports: list[str] = IMPORTS,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Count a sweep's runs: done / running (live lease) / failed / pending."""
    from fmlab.study import import_modules
    from fmlab.sweep.record import find_sweep
    from fmlab.sweep.tables import sweep_status

    import_modules(imports)
    directory = find_sweep(sweep_name, out_dir)
    s = sweep_status(directory)
    if as_json:
        return emit_json(s.as_dict())
    if watch:
        s = _watch(directory, interval)
    c = s.counts
    table = Table(title=escape(f"sweep {s.name} · {s.study}"), caption=escape(str(s.directory)))
    for col in ("total", "done", "completed", "diverged", "running", "failed", "pending"):
        table.add_column(col, justify="right")
    values = [s.total, s.done, c["completed"], c["diverged"], c["running"], c["failed"]]
    table.add_row(*map(str, [*values, c["pending"]]))
    out.print(table)


def _watch(directory: Path, interval: float) -> Any:
    from fmlab.sweep.tables import sweep_status

    s = sweep_status(directory)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err) as bars:
        task = bars.add_task("done", total=s.total)
        try:
            while True:
                s = sweep_status(directory)
                c = s.counts
                label = (
                    f"done · {c['running']} running · {c['failed']} failed · {c['pending']} pending"
                )
                bars.update(task, completed=s.done, description=label)
                if c["running"] == 0 and c["pending"] == 0:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
    return s


@app.command("table")
@friendly
def table_(
    sweep_name: str = typer.Argument(..., metavar="SWEEP", help="sweep name or directory"),
    by: list[str] = typer.Option([], "--by", help="group by these config keys"),
    metric: list[str] = typer.Option([], "--metric", "-m", help="summary metric(s) to show"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json"),
    out_dir: Path = OUT,
    imports: list[str] = IMPORTS,
    as_json: bool = typer.Option(False, "--json", help="the same as --format json"),
) -> None:
    """Final metrics per config: mean ± 95% CI over seeds (Student t)."""
    from fmlab.study import import_modules
    from fmlab.sweep.record import find_sweep, read_record
    from fmlab.sweep.tables import default_by, sweep_table, to_records, wide_table

    import_modules(imports)
    fmt = "json" if as_json else fmt
    if fmt not in ("table", "csv", "json"):
        raise fail(f"--format {fmt!r}: choose table, csv or json")
    directory = find_sweep(sweep_name, out_dir)
    keys = list(by) or default_by(read_record(directory))
    long = sweep_table(directory, by=keys, metrics=list(metric) or None)
    if fmt == "json":
        return emit_json({"sweep": str(directory), "by": keys, "rows": to_records(long)})
    if fmt == "csv":
        out.file.write(long.to_csv(index=False))
        return None
    if long.empty:
        raise fail(f"no finished runs in {directory} yet (see `fmlab status {directory}`)", 1)
    wide = wide_table(long, keys)
    view = Table(
        title=escape(f"sweep {directory.name} · mean ± 95% CI over seeds"),
        caption=escape(str(directory)),
    )
    for col in wide.columns:  # fold long metric names rather than cut them off
        view.add_column(
            escape(str(col)), justify="left" if col in keys else "right", overflow="fold"
        )
    for row in wide.itertuples(index=False):
        view.add_row(*[plain(v) for v in row])
    out.print(view)
