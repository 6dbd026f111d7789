"""Sweeps that survive: many runs of a study, resumable, on one machine or a cluster.

    from fmlab.sweep import sweep_spec, run_sweep, sweep_table
    spec = sweep_spec("grokking", "quick", grid={"train.weight_decay": [0.1, 1.0]}, seeds=5)
    result = run_sweep(spec, executor="local", jobs=2)   # rerun it to resume
    print(sweep_table(result.directory))

See ``docs/sweeps.md`` for running the same sweep on Ray or SLURM. Names are imported
lazily, so that a worker process importing :mod:`fmlab.sweep.worker` does not pay for
the driver's and the tables' imports.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SweepInterrupted": "driver",
    "SweepResult": "driver",
    "run_sweep": "driver",
    "EXECUTORS": "executors",
    "Executor": "executors",
    "make_executor": "executors",
    "SweepChanged": "record",
    "find_sweep": "record",
    "read_record": "record",
    "SweepPlan": "spec",
    "SweepPoint": "spec",
    "SweepSpec": "spec",
    "plan": "spec",
    "sweep_spec": "spec",
    "SweepStatus": "tables",
    "sweep_frame": "tables",
    "sweep_status": "tables",
    "sweep_table": "tables",
    "write_sweep_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fmlab.sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(f"fmlab.sweep.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
