"""Run one study config into its run directory and record the outcome.

``execute`` is what ``fmlab run``, sweeps and every executor call: it resolves the run
id, skips a run that already finished, calls the study, turns a NaN/inf loss into a
``diverged`` result and an exception into a ``failed`` one (with its traceback), checks
the claims, and writes ``summary.json`` last.
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fmlab import checkpoint
from fmlab.checkpoint import Policy, stop_at_checkpoints
from fmlab.claims import evaluate_claims
from fmlab.config import Config, config_hash
from fmlab.contracts import CorruptFileError
from fmlab.device import use
from fmlab.env import env_info
from fmlab.errors import FmlabWarning
from fmlab.lease import DEFAULT_TTL, LeaseKeeper, current_lease, describe, try_acquire
from fmlab.store import SUMMARY, Run, quarantine, read_summary, skip
from fmlab.study import Study
from fmlab.train.loop import Diverged
from fmlab.train.memory import keep_freed_memory

DONE = ("completed", "diverged")  # a failed run is rerun; a diverged one is a result


@dataclass(frozen=True)
class RunResult:
    path: Path
    summary: dict[str, Any]
    reused: bool = False

    @property
    def status(self) -> str:
        return self.summary["status"]


@contextmanager
def numerics() -> Iterator[None]:
    """Flush subnormal floats to zero while training: once a loss reaches ~1e-7 (a
    memorised grokking train set), subnormal gradients made CPU steps ~10× slower. Also
    keeps freed memory in the process (:mod:`fmlab.train.memory`; process-wide, once)."""
    keep_freed_memory()
    previous = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if previous:  # set_flush_denormal returns whether the CPU supports it
            torch.set_flush_denormal(False)


def run_dir(study: Study, cfg: Config, out: Path) -> Path:
    return Path(out) / study.name / config_hash(study.name, cfg)


def execute(
    study: Study,
    cfg: Config,
    out: Path,
    *,
    force: bool = False,
    progress: Any = None,
    reraise: bool = False,
    preset: str | None = None,
    lease: bool = True,
    device: str | None = None,
    checkpoints: Policy | None = None,
    trackers: Sequence[Any] = (),
) -> RunResult:
    """Run ``cfg`` of ``study`` under ``out`` unless it already finished.

    ``force`` reruns a finished run; ``reraise`` re-raises a study's exception after
    recording the failure (for interactive use); ``progress`` shows progress bars;
    ``preset`` is recorded in the summary for reports (it is not part of the run id).
    The run directory's lease is held while it runs (``lease=False``: the caller holds
    it), so the same config started twice at once runs once: the second waits for the
    first and reuses its result. ``device`` (``auto`` by default: a GPU if there is one)
    and ``checkpoints`` (:class:`fmlab.checkpoint.Policy`; an unfinished run resumes
    from its loops' checkpoints) say how it executes, and so do ``trackers``
    (``"mlflow"``, ``"tensorboard=DIR"`` or :class:`fmlab.trackers.TrackerSpec`: where its
    curves, config, summary and claims are streamed); none is part of the run id. A
    reused run is not sent again (``fmlab.trackers.export_run`` sends a finished one).
    """
    specs = tracker_specs(trackers)
    path = run_dir(study, cfg, out)
    done = reusable(path, force)
    if done is not None:
        return done
    with holding([path], lease) as waited:
        done = reusable(path, force and not waited)  # finished while we waited: reuse it
        if done is not None:
            return done
        clear_for_rerun(path)
        run = begin(study, cfg, out, progress, checkpoints, specs, preset)
        started = time.perf_counter()
        try:
            with executing(device) as where:
                try:
                    outcome: Mapping[str, Any] | BaseException = dict(study.run(cfg, run))
                except Exception as e:  # recorded, not raised: a sweep goes on past a failure
                    outcome = e
            result = record(study, run, outcome, time.perf_counter() - started, preset, where)
        finally:
            run.close_trackers()  # stopped before its summary: the trackers say so
    if reraise and isinstance(outcome, BaseException) and not isinstance(outcome, Diverged):
        raise outcome
    return result


@contextmanager
def executing(device: str | None) -> Iterator[torch.device]:
    """Everything a run executes under: its device, CPU numerics, and stop requests that
    let its loops save a checkpoint first (SIGTERM, SIGINT)."""
    with use(device or "auto") as where, numerics(), stop_at_checkpoints():
        yield where


def tracker_specs(trackers: Sequence[Any]) -> tuple[Any, ...]:
    """:func:`fmlab.trackers.as_specs` (the package is imported only when asked for)."""
    if not trackers:
        return ()
    from fmlab.trackers import as_specs

    return as_specs(trackers)


def execute_batch(
    study: Study,
    cfgs: list[Config],
    out: Path,
    *,
    force: bool = False,
    progress: Any = None,
    preset: str | None = None,
    lease: bool = True,
    device: str | None = None,
    checkpoints: Policy | None = None,
    trackers: Sequence[Any] = (),
) -> list[RunResult]:
    """Run several configs as one batched computation (``study.run_batch``): each still
    gets its own run directory and summary. Finished configs are skipped; without a
    ``run_batch`` the configs run one after another."""
    specs = tracker_specs(trackers)
    paths = [run_dir(study, cfg, out) for cfg in cfgs]
    results: dict[int, RunResult] = {}
    todo = []
    for i, path in enumerate(paths):
        done = reusable(path, force)
        if done is not None:
            results[i] = done
        else:
            todo.append(i)
    if study.run_batch is None or len(todo) < 2:
        for i in todo:
            results[i] = execute(
                study, cfgs[i], out, force=force, progress=progress, preset=preset,
                lease=lease, device=device, checkpoints=checkpoints, trackers=specs,
            )  # fmt: skip
        return [results[i] for i in range(len(cfgs))]
    with holding([paths[i] for i in todo], lease) as waited:
        for i in list(todo):
            done = reusable(paths[i], force and not waited)
            if done is not None:
                results[i] = done
                todo.remove(i)
        for i in todo:
            clear_for_rerun(paths[i])
        runs = [begin(study, cfgs[i], out, progress, checkpoints, specs, preset) for i in todo]
        started = time.perf_counter()
        try:
            with executing(device) as where:
                try:
                    outcomes = list(study.run_batch([cfgs[i] for i in todo], runs))
                except Exception as e:  # the whole batch failed: every member records it
                    outcomes = [e] * len(todo)
            wall = (time.perf_counter() - started) / max(len(todo), 1)  # each member's share
            for i, run, outcome in zip(todo, runs, outcomes, strict=True):
                results[i] = record(study, run, outcome, wall, preset, where)
        finally:
            for run in runs:
                run.close_trackers()
    return [results[i] for i in range(len(cfgs))]


def reusable(path: Path, force: bool) -> RunResult | None:
    """The recorded result of ``path`` if it finished (and ``force`` is off). Reads only;
    a corrupt summary counts as not finished (it is put aside before the rerun)."""
    try:
        existing = read_summary(path)
    except CorruptFileError:
        return None
    if existing is not None and existing["status"] in DONE and not force:
        return RunResult(path, existing, reused=True)
    return None


def clear_for_rerun(path: Path) -> None:
    """Under the run's lease: remove the summary of a run about to be redone (failed, or
    ``--force``); put a corrupt attempt's files aside (never delete them)."""
    try:
        if read_summary(path) is not None:
            (path / SUMMARY).unlink()
    except CorruptFileError as e:
        kept = quarantine(path, str(e))
        skip(e, f"running it again (its files are kept in {kept})")


@contextmanager
def holding(paths: list[Path], enabled: bool = True) -> Iterator[bool]:
    """Hold the leases of ``paths`` (waiting for other holders); yields whether it had to
    wait. The leases are heartbeated while held and released on exit."""
    if not enabled:
        yield False
        return
    waited = False
    with LeaseKeeper() as keeper:
        for path in paths:
            waited |= acquire_waiting(path, keeper)
        yield waited


def acquire_waiting(path: Path, keeper: LeaseKeeper, poll_s: float = 0.5) -> bool:
    """Take ``path``'s lease into ``keeper``, waiting (and saying for whom) while another
    live process holds it; returns whether it waited."""
    waited = False
    while (lease := try_acquire(path, DEFAULT_TTL)) is None:
        holder = current_lease(path)
        if not waited and holder is not None:
            message = f"{path} is being run by {describe(holder)}; waiting for it"
            warnings.warn(FmlabWarning(message), stacklevel=2)
        waited = True
        time.sleep(poll_s)
    keeper.add(lease)
    return waited


def begin(
    study: Study,
    cfg: Config,
    out: Path,
    progress: Any = None,
    checkpoints: Policy | None = None,
    trackers: Sequence[Any] = (),
    preset: str | None = None,
) -> Run:
    run = Run.start(
        Path(out), study.name, config_hash(study.name, cfg), cfg.model_dump(mode="json")
    )
    run.tracker = progress.track if progress is not None else None
    run.checkpoints = checkpoints if checkpoints is not None else Policy()
    if trackers:  # --log-to: the trackers' records of this run start here
        from fmlab.trackers import RunInfo, Trackers

        info = RunInfo(study.name, run.run_id, run.config, preset, run.path)
        run.trackers = Trackers.open(trackers, info, Path(out))
    return run


def record(
    study: Study,
    run: Run,
    outcome: Mapping[str, Any] | BaseException,
    wall_s: float,
    preset: str | None = None,
    device: torch.device | None = None,
) -> RunResult:
    """Turn a study's outcome into ``summary.json``: metrics → completed, a NaN/inf
    loss → diverged (with its step), any other exception → failed (with traceback)."""
    error = None
    if isinstance(outcome, Diverged):
        status, metrics = "diverged", {"diverged_at_step": outcome.step}
    elif isinstance(outcome, BaseException):
        status, metrics = "failed", {}
        error = "".join(traceback.format_exception(outcome))
    else:
        status, metrics = "completed", dict(outcome)
    summary = {
        "study": study.name,
        "run_id": run.run_id,
        "status": status,
        "preset": preset,
        "config": run.config,
        "metrics": metrics,
        "claims": evaluate_claims(study.claims, metrics),
        "env": env_info(device),
        "wall_s": round(wall_s, 3),
    }
    if error is not None:
        summary["error"] = error
    try:
        run.finish(summary)
    except OSError as e:  # a full disk or a vanished directory: record why, if we can
        before = f"{error}\nThen, recording that failure:\n" if error is not None else ""
        summary |= {"status": "failed", "metrics": {}, "error": before + describe_os_error(e)}
        summary["claims"] = evaluate_claims(study.claims, {})
        run.finish_without_metrics(summary)  # a small file; if even this fails, it raises
    checkpoint.clear(run.path)  # finished: nothing to resume
    return RunResult(run.path, read_summary(run.path) or summary)


def describe_os_error(e: OSError) -> str:
    """``could not write runs/x/metrics.parquet: No space left on device``."""
    where = f" {e.filename}" if e.filename else ""
    return f"could not write the run's results{where}: {e.strerror or e}"
