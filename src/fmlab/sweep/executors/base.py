"""The executor contract: where a sweep's tasks run, with options of its own.

An executor is one file in :mod:`fmlab.sweep.executors`: an options model (a
:class:`~fmlab.config.Config`; each field becomes the command-line flag
``--<executor>-<field>``, or the flags its ``json_schema_extra={"flags": [...]}`` lists)
and a factory registered with :func:`register_executor`::

    class MPIOptions(Config):
        hosts: str = Field("localhost", description="comma-separated hosts")

    @register_executor("mpi", MPIOptions, help="one rank per task")
    def create(options: MPIOptions, ctx: ExecutorContext) -> Executor:
        return MPIExecutor(options.hosts.split(","), ctx.jobs)

``fmlab sweep --executor mpi --mpi-hosts a,b`` then works, and ``fmlab list`` shows it.
Executors only execute: the driver decides what runs, and the ledger (run directories
and their leases) records what is done, so swapping executors changes where runs happen,
not what a sweep means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fmlab.config import Config
from fmlab.registry import Registry
from fmlab.sweep.worker import Task, TaskOutcome


class Executor(Protocol):
    """Runs tasks and yields their outcomes in completion order.

    ``task_threads`` is the torch thread count each task sets (None: leave it);
    ``returns_files`` means workers cannot write the sweep directory, so the driver takes
    the leases and writes the runs' returned files."""

    name: str
    task_threads: int | None
    returns_files: bool

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutcome]: ...

    def close(self, interrupted: bool = False) -> None:
        """Free resources; ``interrupted``: stop running tasks so they release leases."""
        ...


@dataclass(frozen=True)
class ExecutorContext:
    """What the driver tells a factory besides its options."""

    jobs: int  # -j: parallel workers, or an array's width
    threads: int | None  # --threads: torch threads per worker (None: the executor decides)
    directory: Path  # the sweep directory (e.g. for a cluster's job files)
    device: str = "auto"  # where the runs compute (cuda…: ask the cluster for GPUs)

    @property
    def wants_gpu(self) -> bool:
        return self.device.startswith("cuda")


@dataclass(frozen=True)
class ExecutorSpec:
    name: str
    help: str
    options: type[Config]
    create: Callable[[Any, ExecutorContext], Executor]

    def flags(self) -> dict[str, list[str]]:
        """Option field → its command-line flags."""
        out = {}
        for field, info in self.options.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            out[field] = list(extra.get("flags") or [f"--{self.name}-{field.replace('_', '-')}"])
        return out


EXECUTORS: Registry[ExecutorSpec] = Registry("executor")


class NoOptions(Config):
    """An executor without options of its own."""


def register_executor(
    name: str, options: type[Config] = NoOptions, *, help: str
) -> Callable[[Callable[[Any, ExecutorContext], Executor]], Callable[..., Executor]]:
    """Register the decorated factory ``create(options, ctx) -> Executor`` as ``name``."""

    def add(create: Callable[[Any, ExecutorContext], Executor]) -> Callable[..., Executor]:
        EXECUTORS.add(name, ExecutorSpec(name, help, options, create))
        return create

    return add
