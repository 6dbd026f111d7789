"""Bootstrap confidence intervals (Efron & Tibshirani 1993, ch. 13-14).

A study reports a number over a finite set of items (prompts, test examples, seeds); the
bootstrap says how much that number would move on another draw of the items, without a
normality assumption. BCa (bias-corrected and accelerated, Efron 1987) is the default because
its coverage is second-order accurate for skewed statistics such as accuracies near 1; the
plain percentile interval is available for comparison. Resampling is vectorized with index
matrices of shape ``(batch, n)`` whenever the statistic takes an ``axis`` argument.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import ndtr, ndtri

from fmlab.stats._format import format_number

__all__ = ["CI", "bootstrap_ci", "paired_bootstrap"]

Statistic = Callable[..., Any]
_MAX_BATCH_ELEMENTS = 2**22  # resampled values per batch: bounds memory at ~32 MB per sample


@dataclass(frozen=True)
class CI:
    """A point estimate with a confidence interval.

    ``n`` is the number of observations behind the estimate (pairs when paired; for several
    independent samples, the size of the smallest).
    """

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    n: int

    def __str__(self) -> str:
        est, lo, hi = (format_number(v) for v in (self.estimate, self.low, self.high))
        return f"{est} [{lo}, {hi}]"

    @property
    def width(self) -> float:
        return self.high - self.low

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _as_samples(data: Any) -> list[np.ndarray]:
    """A tuple is several samples; anything else is one sample."""
    raw = list(data) if isinstance(data, tuple) else [data]
    samples = [np.asarray(s, dtype=float) for s in raw]
    for i, s in enumerate(samples):
        if s.ndim != 1:
            raise ValueError(f"sample {i} must be one-dimensional, got shape {s.shape}")
        bad = np.flatnonzero(~np.isfinite(s)).tolist()
        if bad:
            raise ValueError(f"sample {i} has NaN or infinite values at positions {bad}")
        if len(s) < 2:
            raise ValueError(
                f"sample {i} has {len(s)} observation(s); a bootstrap needs at least 2"
            )
    return samples


def _is_vectorized(statistic: Statistic) -> bool:
    try:
        return "axis" in inspect.signature(statistic).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False


def _apply(statistic: Statistic, vectorized: bool, arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Statistic along the last axis of ``(batch, n)`` arrays → (batch,)."""
    if vectorized:
        return np.asarray(statistic(*arrays, axis=-1), dtype=float)
    rows = np.broadcast_shapes(*(a.shape[:-1] for a in arrays))
    arrays = [np.broadcast_to(a, (*rows, a.shape[-1])) for a in arrays]
    return np.array([float(statistic(*(a[i] for a in arrays))) for i in range(rows[0])])


def _bootstrap_distribution(samples, statistic, vectorized, paired, n_resamples, rng):
    n_max = max(len(s) for s in samples)
    batch = max(1, min(n_resamples, _MAX_BATCH_ELEMENTS // n_max))
    out = []
    for start in range(0, n_resamples, batch):
        b = min(batch, n_resamples - start)
        if paired:  # one index matrix for all samples: pairs stay together
            idx = rng.integers(0, len(samples[0]), (b, len(samples[0])))  # (b, n)
            resampled = [s[idx] for s in samples]
        else:  # same order of draws as scipy.stats.bootstrap
            resampled = [s[rng.integers(0, len(s), (b, len(s)))] for s in samples]
        out.append(_apply(statistic, vectorized, resampled))
    return np.concatenate(out)  # (n_resamples,)


def _jackknife(samples, statistic, vectorized, paired) -> list[np.ndarray]:
    """Leave-one-out statistics, one array per sample (one in total when paired)."""
    groups = [list(range(len(samples)))] if paired else [[j] for j in range(len(samples))]
    out = []
    for group in groups:
        n = len(samples[group[0]])
        keep = ~np.eye(n, dtype=bool)
        batch = max(1, _MAX_BATCH_ELEMENTS // n)
        values = []
        for start in range(0, n, batch):
            rows = keep[start : start + batch]  # (b, n)
            arrays = [
                s[None, :]
                if j not in group
                else np.broadcast_to(s, rows.shape)[rows].reshape(len(rows), n - 1)
                for j, s in enumerate(samples)
            ]
            values.append(_apply(statistic, vectorized, arrays))
        out.append(np.concatenate(values))
    return out


def _bca_levels(theta_hat, theta_b, jack, alpha) -> tuple[float, float]:
    """BCa percentile levels (Efron & Tibshirani 1993, eqs. 14.9-14.15; as scipy)."""
    below = np.count_nonzero(theta_b < theta_hat) + np.count_nonzero(theta_b <= theta_hat)
    z0 = ndtri(below / (2 * len(theta_b)))
    nums, dens = 0.0, 0.0
    for th in jack:
        n = len(th)
        u = (n - 1) * (th.mean() - th)
        nums += np.sum(u**3) / n**3
        dens += np.sum(u**2) / n**2
    # no jackknife spread (e.g. a median with ties): no acceleration rather than NaN
    a_hat = nums / (6 * dens**1.5) if dens > 0 else 0.0
    levels = []
    for z in (ndtri(alpha), -ndtri(alpha)):
        levels.append(float(ndtr(z0 + (z0 + z) / (1 - a_hat * (z0 + z)))))
    return levels[0], levels[1]


def bootstrap_ci(
    data: Any,
    statistic: Statistic = np.mean,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    method: Literal["bca", "percentile"] = "bca",
    seed: int = 0,
    paired: bool = False,
) -> CI:
    """Bootstrap confidence interval for ``statistic(*samples)``.

    ``data`` is one sample (any 1-D array-like) or a *tuple* of samples. With ``paired=True``
    the samples must have equal length and are resampled with the same indices (pairs stay
    together); otherwise each sample is resampled independently. ``statistic`` may accept an
    ``axis`` keyword, in which case all resamples of a batch are evaluated in one call
    (``np.mean``, ``np.median`` and lambdas with ``axis`` do); otherwise it is called once per
    resample. Resample indices come from ``np.random.default_rng(seed)`` in the same order as
    ``scipy.stats.bootstrap``, so both give the same interval for the same seed when it fits
    in one batch.

    Degenerate input: fewer than 2 observations in a sample raises ``ValueError`` (no
    interval can be estimated from one point). When every resample gives the same value
    (e.g. all observations equal) the interval is returned with ``low == high == estimate``:
    the data show no variability, which is the honest summary. If BCa is undefined because
    the estimate lies outside the bootstrap distribution, the percentile interval is returned
    with a warning.
    """
    if method not in ("bca", "percentile"):
        raise ValueError(f"method must be 'bca' or 'percentile', got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    samples = _as_samples(data)
    if paired and len({len(s) for s in samples}) > 1:
        raise ValueError(f"paired samples need equal lengths, got {[len(s) for s in samples]}")
    paired = paired or len(samples) == 1
    vectorized = _is_vectorized(statistic)
    theta_hat = float(np.asarray(statistic(*samples)))
    n = min(len(s) for s in samples)
    rng = np.random.default_rng(seed)
    theta_b = _bootstrap_distribution(samples, statistic, vectorized, paired, n_resamples, rng)
    if np.ptp(theta_b) == 0 and theta_b[0] == theta_hat:
        return CI(theta_hat, theta_hat, theta_hat, confidence, method, n)
    alpha = (1 - confidence) / 2
    levels = (alpha, 1 - alpha)
    if method == "bca":
        jack = _jackknife(samples, statistic, vectorized, paired)
        bca = _bca_levels(theta_hat, theta_b, jack, alpha)
        if np.all(np.isfinite(bca)) and 0 < bca[0] <= bca[1] < 1:
            levels = bca
        else:
            warnings.warn(
                "BCa interval undefined (estimate outside the bootstrap distribution); "
                "returning the percentile interval",
                RuntimeWarning,
                stacklevel=2,
            )
    low, high = np.quantile(theta_b, levels)
    return CI(theta_hat, float(low), float(high), confidence, method, n)


def paired_bootstrap(
    a: Any,
    b: Any,
    statistic: Statistic = np.mean,
    **kwargs: Any,
) -> CI:
    """CI of ``statistic(a) - statistic(b)`` over items scored by two methods.

    The two methods were evaluated on the same items, so the items are resampled jointly:
    the item-to-item variation that both share cancels, which is what makes a paired
    comparison far tighter than two separate intervals. Keywords go to :func:`bootstrap_ci`.
    """
    if _is_vectorized(statistic):

        def diff(x, y, axis=-1):
            return statistic(x, axis=axis) - statistic(y, axis=axis)
    else:

        def diff(x, y):
            return statistic(x) - statistic(y)

    return bootstrap_ci((a, b), diff, paired=True, **kwargs)
