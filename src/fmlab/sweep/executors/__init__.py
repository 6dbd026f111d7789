"""Executors: where a sweep's tasks run. They share one small interface and one ledger.

Every executor hands :class:`~fmlab.sweep.worker.Task` objects to
:func:`~fmlab.sweep.worker.run_task` somewhere — in the driver (``serial``), in a pool of
spawned processes (``local``), on a Ray cluster (``ray``) or in SLURM jobs via submitit
(``slurm``) — and yields each :class:`~fmlab.sweep.worker.TaskOutcome` as it arrives.
They never decide what to run and never write results themselves; the ledger (run
directories and their leases) is the one source of truth, so swapping the executor
changes where runs execute, not what a sweep means.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from fmlab.errors import UserInputError
from fmlab.sweep.worker import Task, TaskOutcome

EXECUTORS = ("serial", "local", "ray", "slurm")


class Executor(Protocol):
    """Runs tasks and yields their outcomes in completion order."""

    name: str

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutcome]: ...

    def close(self, interrupted: bool = False) -> None:
        """Free resources; ``interrupted``: stop running tasks so they release leases."""
        ...


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_threads(jobs: int, threads: int | None, cores: int | None = None) -> int:
    """Torch threads per worker so that ``jobs × threads ≤ cores`` (oversubscribed
    OpenMP threads spin and slow every process down many times)."""
    cores = cores or available_cores()
    if jobs < 1:
        raise UserInputError(f"-j/--jobs must be >= 1, got {jobs}")
    if threads is None:
        return max(1, cores // jobs)
    if threads < 1:
        raise UserInputError(f"--threads must be >= 1, got {threads}")
    if jobs * threads > cores:
        raise UserInputError(
            f"-j {jobs} × --threads {threads} = {jobs * threads} threads exceeds the {cores} "
            f"cores here; use at most --threads {max(1, cores // jobs)} or fewer jobs"
        )
    return threads


def make_executor(name: str, *, jobs: int = 1, threads: int | None = None, **options: Any):
    """The executor called ``name``. Options: ``address`` (ray); ``folder``, ``cluster``,
    ``partition``, ``time_min``, ``cpus``, ``mem_gb``, ``gpus``, ``extra`` (slurm)."""
    if name == "serial":
        from fmlab.sweep.executors.local import SerialExecutor

        if jobs != 1:
            raise UserInputError(f"the serial executor runs one job at a time; got -j {jobs}")
        return SerialExecutor()
    if name == "local":
        from fmlab.sweep.executors.local import LocalExecutor

        return LocalExecutor(jobs, plan_threads(jobs, threads))
    if name == "ray":
        from fmlab.sweep.executors.raycluster import RayExecutor

        return RayExecutor(address=options.get("address"), threads=threads or 1)
    if name == "slurm":
        from fmlab.sweep.executors.slurm import SlurmExecutor

        return SlurmExecutor(jobs=jobs, threads=threads or 1, **options)
    raise UserInputError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "Executor", "available_cores", "make_executor", "plan_threads"]
