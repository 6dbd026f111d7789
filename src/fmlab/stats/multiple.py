"""Multiple comparisons: Holm's step-down procedure (Holm 1979).

A study that compares a method against several baselines, or on several tasks, runs several
tests; Holm controls the family-wise error rate at ``alpha`` like Bonferroni but rejects at
least as often, with no assumption on the dependence between the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["HolmResult", "holm_bonferroni"]


@dataclass(frozen=True, eq=False)
class HolmResult:
    """Holm-adjusted p-values and rejections, in the order of the input."""

    pvalues_adjusted: np.ndarray  # (m,)
    reject: np.ndarray  # (m,) bool
    alpha: float


def holm_bonferroni(pvalues: Any, alpha: float = 0.05) -> HolmResult:
    """Holm step-down adjustment: sort ``p_(1) <= … <= p_(m)``; the adjusted value of the
    i-th smallest is ``max_{j <= i} min(1, (m - j + 1) p_(j))``; reject where it is
    ``<= alpha``. Equivalent to rejecting ``H_(1), …, H_(k-1)`` for the first ``k`` with
    ``p_(k) > alpha / (m - k + 1)``.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional, got shape {p.shape}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("pvalues must lie in [0, 1] (no NaN)")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return HolmResult(adjusted, adjusted <= alpha, float(alpha))
