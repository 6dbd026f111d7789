"""Train a study's independent models in parallel processes, one torch thread each.

A study whose run trains many small, independent models (one per width, seed, mixer …)
can spread them over the cores with :func:`pool_map`. The models are small, so one
thread per process is fastest (two threads per process on shared cores make OpenMP spin),
and each job is seeded on its own, so the results are the same whichever process runs a
job and in whatever order the jobs finish — the same numbers as ``workers=1`` in a
process with one torch thread.

Workers cannot write into the parent's run: a job that logs curves gets a
:class:`CurveLog` in place of the :class:`~fmlab.store.Run`, returns it, and the parent
replays it with :meth:`CurveLog.replay_into` in the jobs' order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fmlab.checkpoint import LoopCheckpoint, Policy
from fmlab.store import Run, RunLog

T = TypeVar("T")


# The checkpoint directory and policy of the run whose jobs this process executes (set
# by pool_map, in the parent or in a worker), for jobs that save their own loops.
_JOB_CHECKPOINTS: tuple[str, Policy] | None = None


def _worker_init(device: str, checkpoints: tuple[str, Policy] | None) -> None:
    import torch

    from fmlab.device import _current, resolve
    from fmlab.train.memory import keep_freed_memory

    global _JOB_CHECKPOINTS
    torch.set_flush_denormal(True)  # as fmlab.runner.numerics() does in the parent
    keep_freed_memory()
    _current.set(resolve(device))  # the parent run's device
    _JOB_CHECKPOINTS = checkpoints


def job_checkpoint(key: str, state=None, restore=None) -> LoopCheckpoint | None:
    """A checkpoint for a loop inside a ``pool_map`` job that logs no rows (it returns its
    results): saved into the parent run's checkpoint directory."""
    if _JOB_CHECKPOINTS is None:
        return None
    directory, policy = _JOB_CHECKPOINTS
    return LoopCheckpoint(Path(directory), key, [], policy, state, restore)


def pool_map(
    fn: Callable[..., T],
    jobs: Sequence[tuple[Any, ...]],
    workers: int,
    run: RunLog | None = None,
    label: str = "models",
    cost: Callable[[tuple[Any, ...]], float] | None = None,
) -> list[T]:
    """``[fn(*job) for job in jobs]``, in ``workers`` processes of one torch thread each
    (:class:`fmlab.parallel.ProcessPool`) when ``workers > 1``.

    Results come back in the order of ``jobs``. ``cost`` (higher = longer) starts the
    longest jobs first, which keeps the workers evenly loaded to the end; ``run`` shows one
    progress bar counting finished jobs. ``fn`` and the jobs must be picklable (a
    module-level function and plain values or configs). A job that raises raises here.
    """
    from fmlab.device import current
    from fmlab.parallel import Crashed, Done, ProcessPool

    global _JOB_CHECKPOINTS
    order = sorted(range(len(jobs)), key=lambda i: -cost(jobs[i])) if cost else range(len(jobs))
    order = list(order)
    results: dict[int, T] = {}
    spec = run.checkpoint_spec() if hasattr(run, "checkpoint_spec") else None
    if workers <= 1 or len(jobs) <= 1:
        _JOB_CHECKPOINTS = spec
        try:
            for i in _tracked(order, len(jobs), run, label):
                results[i] = fn(*jobs[i])
        finally:
            _JOB_CHECKPOINTS = None
        return [results[i] for i in range(len(jobs))]
    init = functools.partial(_worker_init, str(current()), spec)
    with ProcessPool(min(workers, len(jobs)), threads=1, init=init) as pool:
        outcomes = pool.run(fn, [jobs[i] for i in order])
        for outcome in _tracked(outcomes, len(jobs), run, label):
            job = order[outcome.index]
            if isinstance(outcome, Done):
                results[job] = outcome.value
            elif isinstance(outcome, Crashed):
                raise RuntimeError(f"job {job} of {label}: {outcome.message}")
            elif outcome.error is not None:
                outcome.error.add_note(f"in a worker process:\n{outcome.traceback}")
                raise outcome.error
            else:
                raise RuntimeError(f"job {job} of {label} failed:\n{outcome.traceback}")
    return [results[i] for i in range(len(jobs))]


def map_logged(
    fn: Callable[..., T],
    jobs: Sequence[tuple[Any, ...]],
    workers: int,
    run: RunLog,
    label: str = "models",
    cost: Callable[[tuple[Any, ...]], float] | None = None,
) -> list[T]:
    """``[fn(*job, run) for job in jobs]``: each job logs its curves into the run it is
    given. With ``workers > 1`` the jobs run through :func:`pool_map`, each logging into a
    :class:`CurveLog` that is replayed into ``run`` in the jobs' order — the same metrics
    table as ``workers=1``. ``fn`` must be a module-level function."""
    if workers <= 1:
        return [fn(*job, run) for job in jobs]
    done = pool_map(functools.partial(_logged_job, fn), jobs, workers, run, label, cost)
    for _, log in done:
        log.replay_into(run)
    return [result for result, _ in done]


def _logged_job(fn: Callable[..., T], *job: Any) -> tuple[T, CurveLog]:
    log = CurveLog()
    return fn(*job, log), log


def _tracked(items: Iterable[Any], total: int, run: RunLog | None, label: str) -> Iterator[Any]:
    return iter(items) if run is None else run.track(items, total, label)


class CurveLog:
    """A :class:`~fmlab.store.RunLog` for a worker process: records ``log`` calls
    (``track`` passes items through) so that the parent can replay them into its run."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._checkpoints = _JOB_CHECKPOINTS  # the parent run's (directory, policy)

    def log(self, step: int, metrics: Mapping[str, float], **tags: Any) -> None:
        for name, value in metrics.items():
            self.rows.append({"step": int(step), "name": name, "value": float(value), **tags})

    def track(self, items: Iterable[Any], total: int, label: str = "") -> Iterator[Any]:
        return iter(items)

    def checkpoint(self, key: str, state=None, restore=None) -> LoopCheckpoint | None:
        """As :meth:`fmlab.store.Run.checkpoint`: the worker saves into the parent run."""
        if self._checkpoints is None:
            return None
        directory, policy = self._checkpoints
        return LoopCheckpoint(Path(directory), key, [self], policy, state, restore)

    def rows_logged(self) -> list[dict[str, Any]]:
        return self.rows

    def extend_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        self.rows.extend(dict(r) for r in rows)

    def replay_into(self, run: Run) -> None:
        run.extend_rows(self.rows)
