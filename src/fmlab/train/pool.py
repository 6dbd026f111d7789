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

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from fmlab.store import Run, RunLog

T = TypeVar("T")


def _worker_init() -> None:
    import torch

    from fmlab.train.memory import keep_freed_memory

    torch.set_flush_denormal(True)  # as fmlab.runner.numerics() does in the parent
    keep_freed_memory()


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
    from fmlab.parallel import Crashed, Done, ProcessPool

    order = sorted(range(len(jobs)), key=lambda i: -cost(jobs[i])) if cost else range(len(jobs))
    order = list(order)
    results: dict[int, T] = {}
    if workers <= 1 or len(jobs) <= 1:
        for i in _tracked(order, len(jobs), run, label):
            results[i] = fn(*jobs[i])
        return [results[i] for i in range(len(jobs))]
    with ProcessPool(min(workers, len(jobs)), threads=1, init=_worker_init) as pool:
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


def _tracked(items: Iterable[Any], total: int, run: RunLog | None, label: str) -> Iterator[Any]:
    return iter(items) if run is None else run.track(items, total, label)


class CurveLog:
    """A :class:`~fmlab.store.RunLog` for a worker process: records ``log`` calls
    (``track`` passes items through) so that the parent can replay them into its run."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float], dict[str, Any]]] = []

    def log(self, step: int, metrics: Mapping[str, float], **tags: Any) -> None:
        self.rows.append((int(step), {k: float(v) for k, v in metrics.items()}, tags))

    def track(self, items: Iterable[Any], total: int, label: str = "") -> Iterator[Any]:
        return iter(items)

    def replay_into(self, run: Run) -> None:
        for step, metrics, tags in self.rows:
            run.log(step, metrics, **tags)
