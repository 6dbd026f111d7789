"""Aggregating a metric over training seeds.

Studies typically run 3-5 seeds per configuration. With so few values a bootstrap has almost
nothing to resample (its intervals are too narrow), so the interval across seeds is the
Student-t interval ``mean ± t_{n-1, (1+c)/2} · s / √n``, which is exact for normal seed-to-seed
variation and honest (wide) for small n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from fmlab.stats._format import format_number
from fmlab.stats.bootstrap import CI
from fmlab.stats.bounds import clip_interval, interval_bounds

__all__ = [
    "BY_SEED",
    "CI_HIGH",
    "CI_LOW",
    "SUFFIXES",
    "aggregate_seeds",
    "format_mean_ci",
    "over_seed_rows",
    "over_seeds",
    "t_interval",
]

# A quantity measured over seeds appears in a summary as ``<name>`` (the mean) with
# ``<name>_ci_low``/``<name>_ci_high`` (its 95 % interval) and ``<name>_by_seed``. Claims,
# reports and sweep tables read these names; :func:`over_seeds` writes them.
CI_LOW, CI_HIGH, BY_SEED = "_ci_low", "_ci_high", "_by_seed"
SUFFIXES = (CI_LOW, CI_HIGH, BY_SEED)


def t_interval(
    values: Any, confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> CI:
    """Student-t interval for the mean of ``values`` (NaNs dropped), clipped to ``bounds``
    when given (a fraction's interval stays in [0, 1]: :mod:`fmlab.stats.bounds`).

    One value gives ``low = high = NaN``: its spread is unknown, which a zero-width interval
    would hide.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return CI(math.nan, math.nan, math.nan, confidence, "t", 0)
    mean = float(x.mean())
    if n == 1:
        return CI(mean, math.nan, math.nan, confidence, "t", 1)
    half = float(sps.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    low, high = clip_interval(mean - half, mean + half, bounds)
    return CI(mean, low, high, confidence, "t", n)


def over_seeds(
    name: str,
    values: Sequence[float | None],
    *,
    extremes: bool = False,
    log: bool = False,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """One quantity over seeds, in the summary's names: ``name`` (mean),
    ``name_ci_low``/``_ci_high`` (the t-interval, with 2+ seeds) and ``name_by_seed``;
    with ``extremes`` also ``name_min``/``name_max``. ``log`` averages on the log scale (a
    geometric mean and interval: for ratios, which are skewed where their logarithms are
    not). A quantity some seed did not reach (None) has no mean, so a claim on it fails as
    "not reached" rather than being judged on the seeds that did. A fraction's interval
    (``test_acc``…, :func:`fmlab.stats.bounds.is_fraction`) is clipped to [0, 1]."""
    values = list(values)
    out: dict[str, Any] = {f"{name}{BY_SEED}": values}
    keys = (name, f"{name}_min", f"{name}_max") if extremes else (name,)
    if not values or any(v is None for v in values):
        return out | dict.fromkeys(keys)
    x = [math.log(max(float(v), 1e-12)) if log else float(v) for v in values]
    ci = t_interval(x, confidence)
    back = math.exp if log else float
    out[name] = back(ci.estimate)
    if extremes:
        out[f"{name}_min"], out[f"{name}_max"] = min(values), max(values)
    if ci.n > 1:
        low, high = clip_interval(back(ci.low), back(ci.high), interval_bounds(name, values))
        out[f"{name}{CI_LOW}"], out[f"{name}{CI_HIGH}"] = low, high
    return out


def over_seed_rows(per_seed: Sequence[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    """:func:`over_seeds` of every key of per-seed result dicts (names get ``prefix``)."""
    out: dict[str, Any] = {}
    for key in per_seed[0]:
        out |= over_seeds(f"{prefix}{key}", [row[key] for row in per_seed])
    return out


def aggregate_seeds(
    df: pd.DataFrame,
    by: Sequence[str],
    metrics: Sequence[str],
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean and t-interval of each metric across the rows (seeds) of each group.

    Returns a long table with columns ``[*by, "metric", "mean", "std", "low", "high", "n"]``,
    one row per group and metric (``df.pivot`` it for a wide table); ``n`` counts the non-NaN
    values. Groups with one seed get NaN bounds. A fraction's interval is clipped to [0, 1]
    (:mod:`fmlab.stats.bounds`).
    """
    by, metrics = list(by), list(metrics)
    missing = [c for c in [*by, *metrics] if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the table has {list(df.columns)}")
    groups = df.groupby(by, sort=True, dropna=False) if by else [((), df)]
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for m in metrics:
            ci = t_interval(group[m], confidence, interval_bounds(m, group[m].dropna()))
            std = float(group[m].std(ddof=1)) if ci.n > 1 else math.nan
            rows.append((*key, m, ci.estimate, std, ci.low, ci.high, ci.n))
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "std", "low", "high", "n"])


def format_mean_ci(
    mean: float | CI,
    low: float | None = None,
    high: float | None = None,
    *,
    digits: int | None = None,
) -> str:
    """``"0.91 ± 0.03"``: a mean and the half-width of a symmetric interval.

    Accepts a :class:`CI` or ``(mean, low, high)``. ``digits`` (decimals) defaults to showing
    the half-width with one significant digit (two when it starts with 1 or 2), and the mean
    to the same decimal place. An asymmetric interval is written ``"0.91 [0.85, 0.93]"``
    rather than squeezed into ``±``; a missing interval (one seed) as ``"0.912 ± nan"``.
    """
    if isinstance(mean, CI):
        mean, low, high = mean.estimate, mean.low, mean.high
    if low is None or high is None:
        raise ValueError("give a CI or mean, low and high")
    half = (high - low) / 2
    if not (math.isfinite(half) and half > 0):
        return f"{format_number(mean)} ± {half if not math.isfinite(half) else 0:g}"
    if digits is None:
        mag = math.floor(math.log10(half))
        lead = half / 10**mag
        digits = max(0, -mag + (1 if lead < 2.95 else 0))
    if abs((high - mean) - (mean - low)) > 1e-6 * max(abs(high), abs(low), 1e-300):
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"
