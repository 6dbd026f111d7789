"""fmlab: a laboratory for the mathematical and empirical understanding of foundation models.

The public API, re-exported here::

    import fmlab
    study = fmlab.get_study("grokking")
    cfg = study.resolve("quick", ["train.lr=1e-3"])
    result = fmlab.execute(study, cfg, "runs")      # runs/grokking/<run_id>/
    table = fmlab.load_runs("runs")                   # one row per finished run
"""

from __future__ import annotations

import importlib
from typing import Any

from fmlab.catalog import all_studies, get_study
from fmlab.claims import Claim
from fmlab.config import Config, ConfigError, config_hash
from fmlab.errors import UserInputError
from fmlab.registry import Registry, UnknownNameError
from fmlab.store import Run, RunData, load_runs, read_metrics, read_summary
from fmlab.study import Study, study
from fmlab.version import __version__

# The runner is imported on first use (PEP 562): it imports torch, which `import fmlab`,
# `fmlab --help` and `fmlab fit` do not need. (The names above import no torch.)
_LAZY = {"RunResult": "runner", "execute": "runner", "execute_batch": "runner"}

__all__ = [
    "Claim",
    "Config",
    "ConfigError",
    "Registry",
    "Run",
    "RunData",
    "RunResult",
    "Study",
    "UnknownNameError",
    "UserInputError",
    "__version__",
    "all_studies",
    "config_hash",
    "execute",
    "execute_batch",
    "get_study",
    "load_runs",
    "read_metrics",
    "read_summary",
    "study",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'fmlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fmlab.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
