"""What every executor runs on a worker: take the leases, call the runner, let go.

:func:`run_task` is the only code that executes sweep runs, whether in the driver
(``serial``), in a spawned process (``local``), on a Ray worker or in a SLURM job. It
calls :func:`fmlab.runner.execute` (or :func:`~fmlab.runner.execute_batch` for an
ensemble group) — the same code as ``fmlab run`` — under a lease per run, after checking
that the run's ledger entry is still what the driver planned against (so two drivers
never run the same config twice, and a finished run is never rerun).

When the worker cannot see the sweep directory (a Ray node without the shared
filesystem), or when asked to (``return_files``), it runs into a private temporary
directory and returns the run directories' files; the driver writes them into the
ledger atomically, ``summary.json`` last.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fmlab.config import config_hash, validate
from fmlab.errors import UserInputError
from fmlab.lease import LeaseKeeper, try_acquire
from fmlab.parallel import stoppable
from fmlab.store import LEASE_PREFIX, SUMMARY, atomic_write_bytes
from fmlab.sweep.ledger import fingerprint

SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class RunSpec:
    """One run of a task: its id, resolved config (JSON) and the ledger state the driver
    saw (the summary fingerprint, None = no summary)."""

    run_id: str
    config: dict[str, Any]
    expected: str | None = None


@dataclass(frozen=True)
class Task:
    """A unit of work for an executor: one run, or an ensemble group of runs."""

    study: str
    preset: str
    root: str  # the sweep directory (a runs root), absolute
    sweep_id: str
    runs: tuple[RunSpec, ...]
    imports: tuple[str, ...] = ()
    threads: int | None = None
    lease_ttl: float = 60.0
    lease_by: Literal["worker", "driver"] = "worker"
    return_files: bool = False
    batch: bool = False  # hand the runs to execute_batch as one group
    device: str = "auto"  # resolved where the task runs
    checkpoint_every: float | None = 600.0  # None: the runs save no checkpoints
    trackers: tuple[Any, ...] = ()  # fmlab.trackers.TrackerSpec, targets resolved


@dataclass(frozen=True)
class RunOutcome:
    """What became of one run. ``status``: completed | diverged | failed (recorded in the
    ledger), held (someone else holds its lease), changed (its ledger entry changed since
    planning: done elsewhere), crashed (the worker died; set by executors)."""

    run_id: str
    status: str
    wall_s: float | None = None
    error: str | None = None
    files: dict[str, bytes] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TaskOutcome:
    task: Task
    runs: tuple[RunOutcome, ...]
    host: str = ""
    pid: int = 0


def crashed(task: Task, error: str) -> TaskOutcome:
    """The outcome of a task whose worker died or raised outside the runner."""
    return TaskOutcome(task, tuple(RunOutcome(r.run_id, "crashed", error=error) for r in task.runs))


def sweep_visible(root: Path, sweep_id: str) -> bool:
    """Whether this worker sees the driver's sweep directory (a shared filesystem)."""
    try:
        return json.loads((Path(root) / SWEEP_FILE).read_text()).get("sweep_id") == sweep_id
    except (OSError, ValueError):
        return False


def run_task(task: Task) -> TaskOutcome:
    """Execute a task's runs; see the module docstring."""
    import socket

    import torch

    from fmlab.study import import_modules

    import_modules(task.imports)
    if task.threads:
        torch.set_num_threads(task.threads)
    study, cfgs = _resolve(task)
    if (
        task.return_files
        or task.lease_by == "driver"
        or not sweep_visible(task.root, task.sweep_id)
    ):
        outcomes = _run_returning(task, study, cfgs)
    else:
        outcomes = _run_leased(task, study, cfgs)
    return TaskOutcome(task, tuple(outcomes), socket.gethostname(), os.getpid())


def _resolve(task: Task) -> tuple[Any, list[Any]]:
    from fmlab.catalog import get_study
    from fmlab.study import STUDIES

    # a plugin's study is registered by task.imports: skip importing every bundled study
    study = STUDIES.get(task.study) if task.study in STUDIES else get_study(task.study)
    cfgs = []
    for r in task.runs:
        cfg = validate(study.config, r.config)
        if config_hash(study.name, cfg) != r.run_id:
            raise UserInputError(
                f"run {r.run_id}: this worker's fmlab resolves its config to a different run "
                "id; install the same fmlab (and study code) on every node"
            )
        cfgs.append(cfg)
    return study, cfgs


def _execute(task: Task, study: Any, cfgs: list[Any], root: Path) -> list[Any]:
    """The runner on the task's configs; the caller already holds (or needs no) leases."""
    from fmlab.checkpoint import Policy
    from fmlab.runner import execute, execute_batch

    every = task.checkpoint_every
    how = {
        "preset": task.preset,
        "lease": False,
        "device": task.device,
        "checkpoints": Policy(every is not None, every or 0.0),
        "trackers": task.trackers,
    }
    if task.batch and len(cfgs) > 1:
        return execute_batch(study, cfgs, root, **how)
    return [execute(study, cfg, root, **how) for cfg in cfgs]


def _outcome(result: Any) -> RunOutcome:
    s = result.summary
    return RunOutcome(s["run_id"], s["status"], s.get("wall_s"), s.get("error"))


def _run_leased(task: Task, study: Any, cfgs: list[Any]) -> list[RunOutcome]:
    root = Path(task.root)
    outcomes: dict[str, RunOutcome] = {}
    mine: list[tuple[int, Any]] = []
    with LeaseKeeper() as keeper:  # closing it releases every lease, also on Ctrl-C
        for i, r in enumerate(task.runs):
            run_dir = root / study.name / r.run_id
            lease = try_acquire(run_dir, task.lease_ttl)
            if lease is None:
                outcomes[r.run_id] = RunOutcome(r.run_id, "held")
            elif fingerprint(run_dir) != r.expected:  # done (or retried) elsewhere
                lease.release()
                outcomes[r.run_id] = RunOutcome(r.run_id, "changed")
            else:
                keeper.add(lease)
                mine.append((i, cfgs[i]))
        if mine:
            for result in _execute(task, study, [c for _, c in mine], root):
                outcomes[result.summary["run_id"]] = _outcome(result)
    return [outcomes[r.run_id] for r in task.runs]


def _run_returning(task: Task, study: Any, cfgs: list[Any]) -> list[RunOutcome]:
    scratch = Path(tempfile.mkdtemp(prefix="fmlab-run-"))
    try:
        results = _execute(task, study, cfgs, scratch)
        out = []
        for result in results:
            o = _outcome(result)
            out.append(RunOutcome(o.run_id, o.status, o.wall_s, o.error, collect(result.path)))
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def collect(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run directory (relative path → bytes), leases excluded."""
    run_dir = Path(run_dir)
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and not p.name.startswith(LEASE_PREFIX)
    }


def install(run_dir: Path, files: dict[str, bytes]) -> None:
    """Write a returned run into the ledger: clear leftovers (leases kept), write every
    file atomically, ``summary.json`` last — the same guarantee as a local run."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        for child in run_dir.iterdir():
            if not child.name.startswith(LEASE_PREFIX):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    (run_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    for rel, data in sorted(files.items()):
        target = (run_dir / rel).resolve()
        if run_dir.resolve() not in target.parents:
            raise ValueError(f"returned file {rel!r} escapes its run directory")
        if rel != SUMMARY:
            atomic_write_bytes(target, data)
    if SUMMARY in files:
        atomic_write_bytes(run_dir / SUMMARY, files[SUMMARY])


def run_task_stoppable(task: Task) -> TaskOutcome:
    """:func:`run_task` for a separate process (a SLURM job): SIGTERM releases leases."""
    with stoppable():
        return run_task(task)
