"""Comparing runs (``fmlab compare``): what differs in their configs, their summary
metrics side by side with the difference to the first run, their claims side by side, and
their curves overlaid (:mod:`fmlab.report.compare_page` makes them one HTML page).

The first run is the baseline. A difference is **paired** where seeds match: studies
record a quantity over seeds as ``<name>_by_seed`` in the order of their config's
``seeds`` list (a single-seed run has a ``seed``), so the difference is taken seed by
seed over the seeds both runs share and its 95 % interval is the Student-t interval of
those differences (:func:`fmlab.stats.t_interval`) — the paired comparison that removes
the seed-to-seed variation both runs share. Where no seeds match, the difference of the
means is shown without an interval ("unpaired"): with a few seeds a two-sample interval
would mostly measure the seed noise. Intervals of fractions stay inside their bounds
(:mod:`fmlab.stats.bounds`; a difference of fractions inside [-1, 1]).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fmlab.claims import reason, shown_ci
from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.stats.bounds import clip_interval, interval_bounds, is_fraction
from fmlab.stats.seeds import BY_SEED, CI_HIGH, CI_LOW, SUFFIXES, t_interval
from fmlab.store import RunData

__all__ = ["Comparison", "compare_runs", "curve_figure", "difference"]

_STYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class Comparison:
    runs: list[RunData]
    labels: list[str]  # "A", "B", ...
    config_diff: list[dict[str, Any]]  # {key, values: [per run]}
    metrics: list[dict[str, Any]]  # {metric, runs: [{value, low, high}], diffs: [...]}
    claims: list[dict[str, Any]]  # {id, statement, source, threshold, runs: [result|None]}
    curves: list[str]  # metric names logged (as curves) by two runs or more

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": [
                {
                    "label": label,
                    "study": r.study,
                    "run_id": r.run_id,
                    "path": str(r.path),
                    "status": (r.summary or {}).get("status", "unfinished"),
                    "preset": (r.summary or {}).get("preset"),
                }
                for label, r in zip(self.labels, self.runs, strict=True)
            ],
            "config_diff": self.config_diff,
            "metrics": self.metrics,
            "claims": self.claims,
            "curves": self.curves,
        }


def compare_runs(paths: Sequence[Path]) -> Comparison:
    """Read the runs (the first is the baseline) and compare them."""
    runs = [RunData(p) for p in paths]
    labels = [_letter(i) for i in range(len(runs))]
    return Comparison(
        runs, labels, config_diff(runs), metric_rows(runs), claim_rows(runs), curve_names(runs)
    )


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"R{i + 1}"


# ---- configs --------------------------------------------------------------------------


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` → ``{"train.lr": 1}`` (lists are values)."""
    if not isinstance(data, Mapping):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out |= flatten(value, name) if isinstance(value, Mapping) and value else {name: value}
    return out


def config_diff(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """The config keys (and the study) whose values differ between the runs."""
    flat = [{"(study)": r.study, **flatten(r.config)} for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    missing = object()
    rows = []
    for key in keys:
        values = [f.get(key, missing) for f in flat]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            rows.append({"key": key, "values": [None if v is missing else v for v in values]})
    return rows


# ---- summary metrics ------------------------------------------------------------------


def _seeds(run: RunData) -> list[Any] | None:
    """The seeds a run's ``_by_seed`` lists follow: its config's ``seeds`` (or ``seed``)."""
    seeds = run.config.get("seeds")
    if isinstance(seeds, list) and seeds:
        return seeds
    seed = run.config.get("seed")
    return [seed] if isinstance(seed, int) and not isinstance(seed, bool) else None


def _by_seed(run: RunData, metric: str) -> dict[Any, float] | None:
    """``{seed: value}`` of a metric, where the run says which seed each value is."""
    seeds, metrics = _seeds(run), (run.summary or {}).get("metrics", {})
    values = metrics.get(f"{metric}{BY_SEED}")
    if values is None and seeds is not None and len(seeds) == 1:
        values = [metrics.get(metric)]  # a single-seed run: its value is its seed's
    if seeds is None or not isinstance(values, list) or len(values) != len(seeds):
        return None
    return {s: float(v) for s, v in zip(seeds, values, strict=True) if _is_number(v)}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def difference(base: RunData, other: RunData, metric: str) -> dict[str, Any] | None:
    """``other − base`` of one metric: paired over the seeds both ran (with a t-interval
    from two matching seeds on), else the difference of their values."""
    a = (base.summary or {}).get("metrics", {}).get(metric)
    b = (other.summary or {}).get("metrics", {}).get(metric)
    seeds_a, seeds_b = _by_seed(base, metric), _by_seed(other, metric)
    bounds = (-1.0, 1.0) if is_fraction(metric) else None
    if seeds_a and seeds_b:
        common = [s for s in seeds_a if s in seeds_b]
        if common:
            diffs = [seeds_b[s] - seeds_a[s] for s in common]
            ci = t_interval(diffs, bounds=bounds)
            low, high = (ci.low, ci.high) if len(diffs) > 1 else (None, None)
            return {
                "estimate": ci.estimate,
                "low": low,
                "high": high,
                "n": len(diffs),
                "paired": True,
                "seeds": common,
            }
    if _is_number(a) and _is_number(b):
        return {
            "estimate": float(b) - float(a),
            "low": None,
            "high": None,
            "n": 0,
            "paired": False,
            "seeds": [],
        }
    return None


def _scalar_metrics(run: RunData) -> list[str]:
    metrics = (run.summary or {}).get("metrics", {})
    return [k for k, v in metrics.items() if not k.endswith(SUFFIXES) and _is_number(v)]


def metric_rows(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """One row per scalar summary metric of any run: each run's value and 95 % CI, and
    each later run's difference to the first. Claimed metrics come first."""
    claimed = [c.get("metric") for r in runs for c in (r.summary or {}).get("claims", [])]
    names = list(dict.fromkeys(m for r in runs for m in _scalar_metrics(r)))
    order = {m: i for i, m in enumerate(names)}
    names = sorted(names, key=lambda m: (m not in claimed, order[m]))
    rows = []
    for name in names:
        cells = []
        for r in runs:
            metrics = (r.summary or {}).get("metrics", {})
            value = metrics.get(name)
            low, high = metrics.get(f"{name}{CI_LOW}"), metrics.get(f"{name}{CI_HIGH}")
            low, high = clip_interval(low, high, interval_bounds(name, [value]))
            cells.append({"value": value if _is_number(value) else None, "low": low, "high": high})
        diffs = [difference(runs[0], r, name) for r in runs[1:]]
        rows.append({"metric": name, "runs": cells, "diffs": diffs})
    return rows


# ---- claims and curves ----------------------------------------------------------------


def claim_rows(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """Every claim any run states, with each run's verdict (None: the run does not
    state it) and the reason for a failing or untested one."""
    rows: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(runs):
        for c in (r.summary or {}).get("claims", []):
            row = rows.setdefault(
                c["id"],
                {
                    "id": c["id"],
                    "statement": c.get("statement", ""),
                    "source": c.get("source", ""),
                    "threshold": c.get("threshold", ""),
                    "runs": [None] * len(runs),
                },
            )
            row["runs"][i] = {
                "passed": c.get("passed"),
                "value": c.get("value"),
                "ci": shown_ci(c),
                "reason": reason(c),
            }
    return list(rows.values())


def curve_names(runs: Sequence[RunData]) -> list[str]:
    """Metric names two runs or more logged as curves (or the one run's, alone)."""
    counts: dict[str, int] = {}
    for r in runs:
        for name in dict.fromkeys(r.metrics["name"].astype(str)):
            counts[name] = counts.get(name, 0) + 1
    need = min(2, len(runs))
    return [n for n, k in counts.items() if k >= need]


def _tags(frame: pd.DataFrame) -> list[str]:
    """Tag columns that split a metric's rows (e.g. a function class), not seeds."""
    fixed = {"step", "name", "value", "seed"}
    return [c for c in frame.columns if c not in fixed and frame[c].nunique(dropna=True) > 1]


def curve_figure(comp: Comparison, name: str) -> Any:
    """One metric over steps: a colour per run, a line style per tag value (at most
    four; more are averaged), each line the mean over seeds at each step."""
    fig, ax = new_figure(width=6.4, height=3.6)
    max_step = 0.0
    for color, label, run in zip(PALETTE * 4, comp.labels, comp.runs, strict=False):
        rows = run.metrics[run.metrics["name"].astype(str) == name]
        if rows.empty:
            continue
        tags = _tags(rows)
        groups = rows.groupby(tags, dropna=False) if tags else [((), rows)]
        if tags and rows.groupby(tags, dropna=False).ngroups > len(_STYLES):
            groups, tags = [((), rows)], []
        for style, (key, g) in zip(_STYLES, groups, strict=False):
            mean = g.groupby("step")["value"].mean().sort_index()
            key = key if isinstance(key, tuple) else (key,)
            suffix = f" · {', '.join(map(str, key))}" if tags else ""
            ax.plot(
                mean.index,
                mean.to_numpy(),
                style,
                color=color,
                lw=1.4,
                alpha=0.9,
                label=f"{label}{suffix}",
            )
            max_step = max(max_step, float(mean.index.max()))
    if max_step > 100:
        ax.set_xscale("symlog", linthresh=10)
    ax.set(xlabel="step", title=name)
    ax.legend()
    return styled(fig)
