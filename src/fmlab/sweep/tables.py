"""Reading a sweep back: its status (from the ledger) and its results table.

The table groups the runs by the swept keys except the seed key, and reports each final
summary metric as mean ± 95 % CI over the seeds of each group (Student-t, via
:func:`fmlab.stats.aggregate_seeds`: with 3-5 seeds a bootstrap has too little to
resample). Runs that failed are left out; diverged runs are counted per group.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fmlab.config import flatten
from fmlab.contracts import CorruptFileError
from fmlab.errors import UserInputError
from fmlab.registry import did_you_mean
from fmlab.stats import SUFFIXES, aggregate_seeds, format_mean_ci
from fmlab.store import read_summary, skip
from fmlab.sweep.ledger import STATES, RunState, run_state
from fmlab.sweep.record import read_record


@dataclass(frozen=True)
class SweepStatus:
    directory: Path
    name: str
    study: str
    runs: tuple[RunState, ...]

    @property
    def total(self) -> int:
        return len(self.runs)

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(r.state == s for r in self.runs) for s in STATES}

    @property
    def done(self) -> int:
        c = self.counts
        return c["completed"] + c["diverged"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "name": self.name,
            "study": self.study,
            "total": self.total,
            "done": self.done,
            **self.counts,
            "runs": [
                {"run_id": r.run_id, "state": r.state, **({"owner": r.owner} if r.owner else {})}
                for r in self.runs
            ],
        }


def sweep_status(directory: Path) -> SweepStatus:
    record = read_record(directory)
    base = Path(directory) / record["study"]
    runs = tuple(run_state(base / r["run_id"]) for r in record["runs"])
    return SweepStatus(Path(directory), record["name"], record["study"], runs)


def _cell(value: Any) -> Any:
    """A value usable as a group key (lists → tuples) and JSON-able numbers."""
    if isinstance(value, list):
        return tuple(_cell(v) for v in value)
    return value


def sweep_frame(directory: Path) -> pd.DataFrame:
    """One row per finished run of the sweep: ``run_id``, ``status``, each flattened
    config key (``model.d_model`` …) and each scalar summary metric (``metric:<name>``)."""
    record = read_record(directory)
    base = Path(directory) / record["study"]
    rows = []
    for entry in record["runs"]:
        try:
            summary = read_summary(base / entry["run_id"])
        except CorruptFileError as e:
            skip(e)
            continue
        if summary is None or summary.get("status") == "failed":
            continue
        row: dict[str, Any] = {"run_id": entry["run_id"], "status": summary["status"]}
        row.update({k: _cell(v) for k, v in flatten(summary.get("config") or {}).items()})
        for name, value in (summary.get("metrics") or {}).items():
            if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
                row[f"metric:{name}"] = math.nan if value is None else float(value)
        rows.append(row)
    return pd.DataFrame(rows)


def default_by(record: dict[str, Any]) -> list[str]:
    return [k for k in record["swept"] if k != record.get("seed_key")]


def default_metrics(record: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    """The metrics the study's claims are about, else every scalar metric."""
    present = [c[len("metric:") :] for c in frame.columns if c.startswith("metric:")]
    claimed = [m for m in record.get("metrics", []) if m in present]
    return claimed or [m for m in present if not m.endswith(SUFFIXES)]


def sweep_table(
    directory: Path, by: list[str] | None = None, metrics: list[str] | None = None
) -> pd.DataFrame:
    """Long table ``[*by, metric, mean, std, low, high, n]`` (one row per group and
    metric) plus ``runs`` and ``diverged`` per group."""
    record = read_record(directory)
    frame = sweep_frame(directory)
    by = default_by(record) if by is None else list(by)
    if frame.empty:
        return pd.DataFrame(columns=[*by, "metric", "mean", "std", "low", "high", "n"])
    unknown = [k for k in by if k not in frame.columns]
    if unknown:
        keys = [c for c in frame.columns if not c.startswith("metric:") and c != "run_id"]
        hint = did_you_mean(unknown[0], keys)
        raise UserInputError(f"--by {unknown}: not a config key of this sweep.{hint} Known: {keys}")
    metrics = default_metrics(record, frame) if metrics is None else list(metrics)
    present = sorted(c[len("metric:") :] for c in frame.columns if c.startswith("metric:"))
    missing = [m for m in metrics if f"metric:{m}" not in frame.columns]
    if missing:
        hint = did_you_mean(missing[0], present)
        raise UserInputError(f"--metric {missing}: no run reports it.{hint} Known: {present}")
    long = aggregate_seeds(frame, by, [f"metric:{m}" for m in metrics])
    long["metric"] = long["metric"].str.slice(len("metric:"))
    counts = frame.assign(diverged=frame["status"] == "diverged")
    if by:
        sizes = counts.groupby(by, dropna=False).agg(
            runs=("run_id", "size"), diverged=("diverged", "sum")
        )
        long = long.merge(sizes.reset_index(), on=by, how="left")
    else:
        long["runs"], long["diverged"] = len(counts), int(counts["diverged"].sum())
    return long


def wide_table(long: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One row per group, one ``mean ± CI`` column per metric (for display)."""
    if long.empty:
        return pd.DataFrame(columns=by)
    cells = long.assign(value=[_format(r) for r in long.itertuples()])
    index = [*by, "runs", "diverged"] if by else ["runs", "diverged"]
    wide = cells.pivot_table(
        index=index, columns="metric", values="value", aggfunc="first", sort=False, dropna=False
    )
    wide = wide.reset_index()
    wide.columns.name = None
    return wide


def _format(row: Any) -> str:
    if row.n == 0 or not np.isfinite(row.mean):
        return "–"
    if row.n == 1:
        return f"{row.mean:.4g} (1 run)"
    return format_mean_ci(row.mean, row.low, row.high)


def to_records(long: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-able rows (NaN → None, tuples → lists)."""
    text = long.to_json(orient="records")
    return json.loads(text)
