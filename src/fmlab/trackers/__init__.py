"""Experiment trackers: a run's curves, config, summary and claims in TensorBoard, MLflow
or W&B, one file each (:mod:`.base` states the contract). Importing this package imports
every module in it, so a new file is found without an edit here. The libraries are
imported only when a tracker is used.

``--log-to NAME[=TARGET]`` on ``fmlab run | sweep | reproduce`` (``execute(...,
trackers=...)`` in Python) streams a run while it trains; :func:`export_run` (``fmlab
export RUNS --to NAME``) sends a finished run. Which trackers a run logs to is an
execution choice: it is not part of the run id.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from fmlab.errors import UserInputError
from fmlab.trackers.base import (
    TRACKERS,
    Row,
    RunInfo,
    Sink,
    Tracker,
    Trackers,
    TrackerSpec,
    as_specs,
    metric_key,
    parse_specs,
    register_tracker,
    rows_of,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def export_run(run_dir: Path, spec: TrackerSpec, root: Path | None = None) -> str:
    """Send a finished run (config, curves, summary, claims) to a tracker; returns the
    target it went to (default: the tracker's place under ``root``, by default the runs
    directory holding ``run_dir``, i.e. ``run_dir/../..``)."""
    from fmlab.store import read_config, read_metrics, read_summary

    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    if summary is None:
        raise UserInputError(f"{run_dir} has not finished (no summary.json): nothing to export")
    config = read_config(run_dir)
    frame = read_metrics(run_dir)
    info = RunInfo(
        summary["study"], summary["run_id"], config["config"], summary.get("preset"), run_dir
    )
    target = spec.resolved(root if root is not None else run_dir.parent.parent).target
    assert target is not None
    sink = TRACKERS.get(spec.name).open(info, target)
    try:
        sink.log(rows_of(frame.to_dict("records")))
        sink.finish(summary)
    except BaseException:
        sink.close()
        raise
    return target


__all__ = [
    "TRACKERS",
    "Row",
    "RunInfo",
    "Sink",
    "Tracker",
    "TrackerSpec",
    "Trackers",
    "as_specs",
    "export_run",
    "metric_key",
    "parse_specs",
    "register_tracker",
    "rows_of",
]
