"""The sweep driver: plan, compare with the ledger, hand out what is missing, repeat.

fmlab keeps its own ledger — the run directories under the sweep directory — instead of
an engine's restore feature (Ray Tune's ``Tuner.restore`` and Hydra's multirun have no
reliable resume), and uses engines only to execute. The driver

1. validates every point of the spec (nothing runs if one is bad) and saves the spec as
   ``sweep.json``, refusing a resumed sweep whose spec changed (unless ``allow_changed``);
2. scans the ledger: a run with ``summary.json`` is done (a ``failed`` one is retried only
   with ``retry_failed``), one with a live lease is someone else's, the rest are pending;
3. groups pending runs into tasks (ensemble groups for a study with ``run_batch``) and
   hands them to the executor; the worker of each task takes the runs' leases;
4. repeats until nothing is pending and no other driver is still running one of its runs
   (so two drivers on one sweep both return when it is complete).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fmlab.config import canonical_json, flatten
from fmlab.errors import FmlabWarning, UserInputError
from fmlab.lease import LeaseKeeper, current_lease, describe, try_acquire
from fmlab.sweep.executors import Executor, make_executor
from fmlab.sweep.ledger import DONE_STATES, RunState, fingerprint, run_state
from fmlab.sweep.record import open_sweep, sweep_dir
from fmlab.sweep.spec import SweepPlan, SweepPoint, SweepSpec, plan
from fmlab.sweep.worker import RunOutcome, RunSpec, Task, TaskOutcome, install


@dataclass
class SweepResult:
    """What one invocation of a sweep did. ``outcomes`` has one entry per run it
    attempted; ``already_done`` counts runs that were finished before it started."""

    directory: Path
    total: int
    already_done: int = 0
    outcomes: list[RunOutcome] = field(default_factory=list)
    interrupted: bool = False
    duplicates: int = 0

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def ran(self) -> int:
        return sum(o.status in ("completed", "diverged", "failed") for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        statuses = ("completed", "diverged", "failed", "crashed", "changed")
        return {
            "directory": str(self.directory),
            "total": self.total,
            "already_done": self.already_done,
            "ran": self.ran,
            **{s: self.count(s) for s in statuses},
            "interrupted": self.interrupted,
            "duplicate_points": self.duplicates,
            "runs": [
                {"run_id": o.run_id, "status": o.status, "wall_s": o.wall_s} for o in self.outcomes
            ],
        }


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: finished runs are kept, unfinished ones have no summary and
    their leases were released. ``result`` says what was done."""

    def __init__(self, result: SweepResult):
        super().__init__("sweep interrupted")
        self.result = result


def scan(p: SweepPlan, directory: Path) -> dict[str, RunState]:
    base = Path(directory) / p.study.name
    return {pt.run_id: run_state(base / pt.run_id) for pt in p.points}


def wanted(state: RunState, retry_failed: bool) -> bool:
    return state.state == "pending" or (state.state == "failed" and retry_failed)


def group_points(
    p: SweepPlan, points: Sequence[SweepPoint], ensemble: str, size: int | None = None
) -> list[list[SweepPoint]]:
    """Points that differ only in ``study.ensemble_keys`` form one group (one batched
    computation); without ``run_batch`` or with ``ensemble="off"`` each point is alone."""
    study = p.study
    if ensemble == "off" or study.run_batch is None:
        return [[pt] for pt in points]
    keys = tuple(study.ensemble_keys)

    def rest(pt: SweepPoint) -> str:
        flat = flatten(pt.config.model_dump(mode="json"))
        kept = {k: v for k, v in flat.items() if not any(_under(k, e) for e in keys)}
        return canonical_json(kept)

    groups: dict[str, list[SweepPoint]] = {}
    for pt in points:
        groups.setdefault(rest(pt), []).append(pt)
    size = size or max(len(g) for g in groups.values())
    return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


@dataclass(frozen=True)
class TaskSettings:
    """How tasks are built: everything except which runs they hold."""

    root: str
    sweep_id: str
    threads: int | None
    lease_ttl: float
    return_files: bool
    ensemble: Literal["auto", "off"]
    ensemble_size: int | None = None
    device: str = "auto"
    checkpoint_every: float | None = 600.0
    trackers: tuple[Any, ...] = ()


def make_tasks(
    p: SweepPlan, todo: Sequence[SweepPoint], states: dict[str, RunState], s: TaskSettings
) -> list[Task]:
    tasks = []
    for group in group_points(p, todo, s.ensemble, s.ensemble_size):
        runs = tuple(
            RunSpec(pt.run_id, pt.config.model_dump(mode="json"), states[pt.run_id].fingerprint)
            for pt in group
        )
        tasks.append(
            Task(
                study=p.study.name,
                preset=p.spec.preset,
                root=s.root,
                sweep_id=s.sweep_id,
                runs=runs,
                imports=_imports(p),
                threads=s.threads,
                lease_ttl=s.lease_ttl,
                lease_by="driver" if s.return_files else "worker",
                return_files=s.return_files,
                batch=len(runs) > 1,
                device=s.device,
                checkpoint_every=s.checkpoint_every,
                trackers=s.trackers,
            )
        )
    return tasks


def _imports(p: SweepPlan) -> tuple[str, ...]:
    """Modules a fresh worker imports to find the study: those imported here to find it
    (never a module merely listed in a saved spec), and the module that registered it
    unless that is ``__main__`` or a bundled study."""
    module = getattr(p.study.run, "__module__", "") or ""
    extra = () if module in ("__main__", "") or module.startswith("fmlab.") else (module,)
    from fmlab.plugins import absolute  # a file given as ./my_study.py: found from anywhere

    return tuple(dict.fromkeys((*absolute(p.imports), *extra)))


def run_sweep(
    spec: SweepSpec,
    *,
    name: str | None = None,
    out: Path | str = "runs",
    directory: Path | str | None = None,
    executor: str | Executor = "serial",
    jobs: int = 1,
    threads: int | None = None,
    retry_failed: bool = False,
    allow_changed: bool = False,
    ensemble: Literal["auto", "off"] = "auto",
    ensemble_size: int | None = None,
    lease_ttl: float = 60.0,
    return_files: bool = False,
    executor_options: dict[str, Any] | None = None,
    imports: Sequence[str] | None = None,
    device: str = "auto",
    checkpoint_every: float | None = 600.0,
    trackers: Sequence[Any] = (),
    on_start: Callable[[int, int], None] | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> SweepResult:
    """Run (or resume) a sweep; returns what this invocation did.

    The sweep directory is ``directory`` or ``out/sweeps/<name>`` (default name
    ``<study>-<preset>``); runs are stored in it as ``<study>/<run_id>/``. ``executor``
    is a registered executor's name (``serial | local | ray | slurm`` …, with its options
    in ``executor_options``) or an :class:`Executor`. ``on_start(total,
    done)`` and ``on_outcome(run_outcome)`` drive a progress display. ``device`` and
    ``checkpoint_every`` (None: no checkpoints) say where and how the runs execute (a run
    killed with the sweep resumes from its checkpoints on the rerun). ``imports``: the
    modules to import to find the study (default: ``spec.imports``; a resumed sweep
    passes only what the user named, never what its saved spec lists). ``trackers``
    (``"mlflow"``, ``"tensorboard=DIR"`` …) stream every run (default places: under the
    sweep directory); like the device, they are not part of the run ids.
    """
    if ensemble not in ("auto", "off"):
        raise UserInputError(f"--ensemble {ensemble!r}: choose auto or off")
    if not 0 < lease_ttl < float("inf"):
        raise UserInputError(f"--lease-ttl must be a finite number > 0 seconds, got {lease_ttl}")
    p = plan(spec, imports)  # every point is validated before anything is created or started
    default = f"{spec.study}-{spec.preset}"
    where = Path(directory) if directory else sweep_dir(out, default if name is None else name)
    specs: tuple[Any, ...] = ()
    if trackers:  # checked (names, libraries) before anything starts
        from fmlab.trackers import as_specs

        specs = tuple(s.resolved(where) for s in as_specs(trackers))
    if isinstance(executor, str):
        executor = make_executor(
            executor,
            jobs=jobs,
            threads=threads,
            directory=where,
            device=device,
            **(executor_options or {}),
        )
    return_files = return_files or getattr(executor, "returns_files", False)
    try:
        record = open_sweep(p, where, allow_changed=allow_changed)
    except BaseException:
        executor.close()
        raise
    settings = TaskSettings(
        root=str(where.resolve()),
        sweep_id=record["sweep_id"],
        threads=getattr(executor, "task_threads", threads),
        lease_ttl=lease_ttl,
        return_files=return_files,
        ensemble=ensemble,
        ensemble_size=ensemble_size,
        device=device,
        checkpoint_every=checkpoint_every,
        trackers=specs,
    )
    result = SweepResult(where, len(p.points), duplicates=p.duplicates)
    try:
        with _torch_threads_kept(), LeaseKeeper() as keeper:  # exiting releases its leases
            _loop(p, executor, settings, retry_failed, keeper, result, on_start, on_outcome)
    except KeyboardInterrupt:
        result.interrupted = True
        executor.close(interrupted=True)
        raise SweepInterrupted(result) from None
    except BaseException:
        executor.close(interrupted=True)
        raise
    executor.close()
    return result


def _loop(
    p: SweepPlan,
    executor: Executor,
    settings: TaskSettings,
    retry_failed: bool,
    keeper: LeaseKeeper,
    result: SweepResult,
    on_start: Callable[[int, int], None] | None,
    on_outcome: Callable[[RunOutcome], None] | None,
) -> None:
    attempted: set[str] = set()  # each run is tried at most once per invocation

    def note(run: RunOutcome) -> None:
        attempted.add(run.run_id)
        result.outcomes.append(run)
        if on_outcome:
            on_outcome(run)

    first, last_said = True, 0.0
    while True:
        states = scan(p, Path(settings.root))
        if first:
            result.already_done = sum(s.state in DONE_STATES for s in states.values())
            if on_start:
                on_start(result.total, result.already_done)
            first = False
        todo = [
            pt
            for pt in p.points
            if pt.run_id not in attempted and wanted(states[pt.run_id], retry_failed)
        ]
        others = [r for r, s in states.items() if s.state == "running" and r not in attempted]
        if not todo and not others:
            return
        if not todo:  # another driver holds the rest: wait for it (or for its leases to expire)
            last_said = _say_waiting(Path(settings.root) / p.study.name, others, last_said)
            time.sleep(min(1.0, settings.lease_ttl / 4))
            continue
        tasks = make_tasks(p, todo, states, settings)
        if settings.return_files:
            tasks = [t for t in (_lease_for_worker(t, keeper, note) for t in tasks) if t]
        for outcome in executor.run(tasks):
            for run in _record(outcome, keeper):
                if run.status != "held":  # held: someone else runs it; look again later
                    note(run)


WAIT_NOTE_EVERY_S = 30.0


def _say_waiting(base: Path, run_ids: list[str], last: float) -> float:
    """Say which runs other processes hold and when their leases expire — at once, then
    every ``WAIT_NOTE_EVERY_S`` — so that a wait on a dead host is never silent."""
    now = time.monotonic()
    if last and now - last < WAIT_NOTE_EVERY_S:
        return last
    holders = []
    for run_id in run_ids[:3]:
        info = current_lease(base / run_id)
        holders.append(f"{run_id} by {describe(info)}" if info else run_id)
    more = f" and {len(run_ids) - 3} more" if len(run_ids) > 3 else ""
    warnings.warn(
        FmlabWarning(
            f"waiting for {len(run_ids)} run(s) held by other processes: "
            f"{'; '.join(holders)}{more}. A lease held by a dead process on another host "
            f"expires with its TTL; break one now with `fmlab unlock {base.parent}`"
        ),
        stacklevel=2,
    )
    return now


def _lease_for_worker(
    task: Task, keeper: LeaseKeeper, note: Callable[[RunOutcome], None]
) -> Task | None:
    """``return_files``: the worker cannot take leases in the sweep directory, so the
    driver takes them for it, and keeps them until it has written the returned files."""
    kept = []
    for r in task.runs:
        run_dir = Path(task.root) / task.study / r.run_id
        lease = try_acquire(run_dir, task.lease_ttl)
        if lease is None:
            continue  # someone else holds it: looked at again in the next round
        if fingerprint(run_dir) != r.expected:
            lease.release()
            note(RunOutcome(r.run_id, "changed"))
            continue
        keeper.add(lease)
        kept.append(r)
    if not kept:
        return None
    return Task(**{**task.__dict__, "runs": tuple(kept), "batch": len(kept) > 1})


def _record(outcome: TaskOutcome, keeper: LeaseKeeper) -> list[RunOutcome]:
    """Write returned files into the ledger (under a lease, if nothing changed since the
    task was planned); release the driver's leases of the task."""
    task = outcome.task
    expected = {r.run_id: r.expected for r in task.runs}
    out = []
    for run in outcome.runs:
        run_dir = Path(task.root) / task.study / run.run_id
        mine = keeper.get(run_dir)  # taken by _lease_for_worker
        if run.files is not None:
            lease = mine or try_acquire(run_dir, task.lease_ttl)
            if lease is not None and fingerprint(run_dir) == expected[run.run_id]:
                install(run_dir, run.files)
                run = RunOutcome(run.run_id, run.status, run.wall_s, run.error)
            else:  # done by someone else meanwhile: keep theirs, never two results
                run = RunOutcome(run.run_id, "changed")
            if lease is not None and lease is not mine:
                lease.release()
        if mine is not None:
            keeper.release(mine)
        out.append(run)
    return out


class _torch_threads_kept:
    """The serial executor sets torch threads in this process; put them back after."""

    def __enter__(self) -> None:
        import torch

        self._threads = torch.get_num_threads()

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self._threads)
