"""Executors: where a sweep's tasks run, one file each (see :mod:`.base` for the
contract). Importing this package imports every module in it, so a new file is found
without an edit here; a user's executor elsewhere is registered by importing it.

Bundled: ``serial`` (in the driver), ``local`` (spawned processes on this machine),
``ray`` (a Ray cluster) and ``slurm`` (SLURM job arrays through submitit).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from fmlab.config import validate
from fmlab.errors import UserInputError
from fmlab.parallel import available_cores, plan_threads
from fmlab.sweep.executors.base import (
    EXECUTORS,
    Executor,
    ExecutorContext,
    ExecutorSpec,
    NoOptions,
    register_executor,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def make_executor(
    name: str,
    *,
    jobs: int = 1,
    threads: int | None = None,
    directory: Path | str = ".",
    device: str = "auto",
    **options: Any,
) -> Executor:
    """The executor called ``name``, with its options validated by its options model."""
    if jobs < 1:
        raise UserInputError(f"-j/--jobs must be >= 1, got {jobs}")
    spec = EXECUTORS.get(name)
    ctx = ExecutorContext(jobs, threads, Path(directory), device)
    return spec.create(validate(spec.options, options), ctx)


__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorContext",
    "ExecutorSpec",
    "NoOptions",
    "available_cores",
    "make_executor",
    "plan_threads",
    "register_executor",
]
