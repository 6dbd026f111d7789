"""Figures of a sweep: each final metric against each swept key, mean ± 95 % CI over seeds.

One panel per (metric, swept key); the other swept keys, if any, become one line each
(so a weight-decay × width grid shows one line per width against weight decay). Each
seed's value is drawn as a faint dot behind the mean, so the spread that the interval
summarises stays visible. Numeric keys that span more than a decade get a log axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.stats import aggregate_seeds
from fmlab.sweep.record import read_record
from fmlab.sweep.tables import default_by, default_metrics, sweep_frame

MAX_LINES = len(PALETTE)


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _positions(values: list[Any]) -> tuple[dict[Any, float], bool, list[str] | None]:
    """x position of each key value; whether to use a log axis; tick labels (categorical)."""
    uniq = sorted(set(values), key=lambda v: (str(type(v)), v))
    if _numeric(uniq):
        logx = min(uniq) > 0 and max(uniq) / min(uniq) >= 10
        return {v: float(v) for v in uniq}, logx, None
    return {v: float(i) for i, v in enumerate(uniq)}, False, [str(v) for v in uniq]


def metric_vs_key(frame: pd.DataFrame, metric: str, key: str, others: list[str]):
    """One figure: ``metric`` against ``key``, a line per combination of ``others``."""
    column = f"metric:{metric}"
    fig, ax = new_figure()
    pos, logx, labels = _positions(frame[key].tolist())
    groups = frame.groupby(others, dropna=False, sort=True) if others else [((), frame)]
    for i, (group, rows) in enumerate(groups):
        if i >= MAX_LINES:
            break
        color = PALETTE[i % len(PALETTE)]
        x = np.array([pos[v] for v in rows[key]])
        ax.scatter(x, rows[column], s=10, color=color, alpha=0.3, linewidths=0)
        agg = aggregate_seeds(rows, [key], [column]).dropna(subset=["mean"])
        agg = agg.assign(x=[pos[v] for v in agg[key]]).sort_values("x")
        lower = (agg["mean"] - agg["low"]).fillna(0).clip(lower=0)
        upper = (agg["high"] - agg["mean"]).fillna(0).clip(lower=0)
        label = _label(others, group)
        ax.errorbar(
            agg["x"],
            agg["mean"],
            yerr=[lower, upper],
            color=color,
            lw=1.5,
            marker="o",
            ms=4,
            capsize=3,
            label=label,
        )
    if logx:
        ax.set_xscale("log")
    elif labels is None and len(pos) <= 12:  # a few numeric values: tick each one
        ax.set_xticks(sorted(pos.values()))
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0)
    ax.set(xlabel=key, ylabel=metric, title=f"{metric} vs {key} (mean ± 95% CI)")
    if others and len(frame.groupby(others, dropna=False)) > 1:
        ax.legend(title=", ".join(others))
    return styled(fig)


def _label(keys: list[str], group: Any) -> str | None:
    if not keys:
        return None
    values = group if isinstance(group, tuple) else (group,)
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(keys, values, strict=False))


def sweep_figures(directory: Path, metrics: list[str] | None = None) -> dict[str, Any]:
    """``{name: Figure}`` for every (metric, swept key) with at least one finite value."""
    record = read_record(directory)
    frame = sweep_frame(directory)
    keys = default_by(record)
    if frame.empty or not keys:
        return {}
    metrics = metrics or default_metrics(record, frame)
    figures: dict[str, Any] = {}
    for metric in metrics:
        column = f"metric:{metric}"
        if column not in frame or not np.isfinite(frame[column].to_numpy(float)).any():
            continue
        for key in keys:
            others = [k for k in keys if k != key and frame[k].nunique(dropna=False) > 1]
            name = f"{metric}_vs_{key}".replace(".", "_")
            figures[name] = metric_vs_key(frame, metric, key, others)
    return figures
