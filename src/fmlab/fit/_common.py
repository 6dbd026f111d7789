"""Helpers shared by the fitted estimators: bootstrap weights and percentile intervals."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fmlab.stats import CI

__all__ = ["FitWarning", "bootstrap_count_batches", "bootstrap_counts", "percentile_ci"]

#: A streamed bootstrap holds at most this many (resample, point) weights at once.
BOOT_ELEMENTS = 1 << 24
_ROW_BY_ROW = 1024


class FitWarning(UserWarning):
    """A fit finished but its result deserves a second look (see the message)."""


def bootstrap_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicities of ``n`` points in each of ``n_resamples`` resamples → (B, n) floats.

    Resampling points with replacement is the same as weighting each point by how often it
    was drawn; weights let all refits share one data matrix. Counted from ``n`` uniform
    draws per resample (4x faster than ``rng.multinomial`` for 4,000 × 240); from
    ``_ROW_BY_ROW`` points on, one resample at a time (the same counts: the table of one
    resample stays in cache, and no (B, n) array of draws is held).
    """
    if n >= _ROW_BY_ROW:  # the same draws (consumed in order), counted one resample at a time
        counts = np.empty((n_resamples, n))
        for i in range(n_resamples):
            counts[i] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        return counts
    draws = rng.integers(0, n, size=(n_resamples, n)) + n * np.arange(n_resamples)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n * n_resamples)
    return counts.reshape(n_resamples, n).astype(float)


def count_bytes(n: int, n_resamples: int) -> int:
    """Peak bytes of :func:`bootstrap_counts`: the counts, and the draws if not row by row."""
    return (8 if n >= _ROW_BY_ROW else 32) * n * n_resamples


def bootstrap_count_batches(
    n: int, n_resamples: int, rng: np.random.Generator, max_elements: int = BOOT_ELEMENTS
) -> Iterator[np.ndarray]:
    """:func:`bootstrap_counts` in consecutive batches of resamples, each at most
    ``max_elements`` weights (at least one resample): the same counts as one call, since
    the generator's draws are consumed in the same order (checked in the tests)."""
    batch = max(1, min(n_resamples, max_elements // max(n, 1)))
    for lo in range(0, n_resamples, batch):
        yield bootstrap_counts(n, min(batch, n_resamples - lo), rng)


def percentile_ci(estimate: float, draws: np.ndarray, confidence: float, n: int) -> CI:
    """Percentile bootstrap interval of ``draws`` around the full-data ``estimate``."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return CI(float(estimate), np.nan, np.nan, confidence, "percentile", n)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return CI(float(estimate), float(low), float(high), confidence, "percentile", n)
