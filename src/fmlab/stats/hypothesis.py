"""Tests for comparing two methods evaluated on the same items.

When two models answer the same prompts, the per-item differences carry the signal and the
between-item variation cancels; paired tests use exactly that (Dietterich 1998 on McNemar's
test for classifiers; Dror et al. 2018, "The Hitchhiker's Guide to Testing Statistical
Significance in NLP"). Permutation tests make no distributional assumption and are exact when
all rearrangements can be enumerated.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from fmlab.stats._format import format_number
from fmlab.stats.bootstrap import Statistic, _apply, _is_vectorized

__all__ = ["McNemarResult", "PermutationResult", "mcnemar", "permutation_test"]

Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class PermutationResult:
    """Observed statistic, its p-value, and how the null distribution was built."""

    statistic: float
    pvalue: float
    n_resamples: int  # size of the null distribution (all arrangements when exact)
    exact: bool
    alternative: str

    def __str__(self) -> str:
        kind = "exact" if self.exact else f"{self.n_resamples} resamples"
        return (
            f"statistic {format_number(self.statistic)}, p = {format_number(self.pvalue)} ({kind})"
        )


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired binary outcomes.

    ``only_a``: items that A gets right and B wrong; ``only_b``: the reverse. The statistic is
    ``min(only_a, only_b)`` for the exact binomial test and the continuity-corrected
    chi-square otherwise.
    """

    statistic: float
    pvalue: float
    only_a: int
    only_b: int
    exact: bool

    def __str__(self) -> str:
        return (
            f"McNemar ({'exact' if self.exact else 'chi2'}): A-only {self.only_a}, "
            f"B-only {self.only_b}, p = {format_number(self.pvalue)}"
        )


def _pvalue(null: np.ndarray, observed: float, alternative: str, exact: bool) -> float:
    """p-value as in ``scipy.stats.permutation_test`` (ties within 100 ulp count as equal).

    A random null gets the +1 correction (Phipson & Smyth 2010), so p is never 0.
    """
    gamma = abs(np.finfo(float).eps * 100 * observed)
    adj = 0 if exact else 1
    less = (np.count_nonzero(null <= observed + gamma) + adj) / (len(null) + adj)
    greater = (np.count_nonzero(null >= observed - gamma) + adj) / (len(null) + adj)
    p = {"less": less, "greater": greater, "two-sided": 2 * min(less, greater)}[alternative]
    return float(min(p, 1.0))


def _paired_null(d, statistic, vectorized, n_resamples, rng):
    n = len(d)
    exact = 2**n <= n_resamples
    if exact:  # every sign pattern: swapping a_i and b_i flips the sign of d_i
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)  # (2^n, n)
    else:
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, n))
    return _apply(statistic, vectorized, [d * signs]), exact


def _independent_null(a, b, statistic, vectorized, n_resamples, rng):
    pooled = np.concatenate([a, b])
    n, na = len(pooled), len(a)
    exact = math.comb(n, na) <= n_resamples
    if exact:
        in_a = np.zeros((math.comb(n, na), n), dtype=bool)
        for row, combo in enumerate(itertools.combinations(range(n), na)):
            in_a[row, list(combo)] = True
        order = np.argsort(~in_a, axis=1, kind="stable")  # a's indices first
    else:
        order = rng.permuted(np.tile(np.arange(n), (n_resamples, 1)), axis=1)  # (R, n)
    shuffled = pooled[order]
    null = _apply(statistic, vectorized, [shuffled[:, :na]]) - _apply(
        statistic, vectorized, [shuffled[:, na:]]
    )
    return null, exact


def permutation_test(
    a: Any,
    b: Any,
    *,
    paired: bool = True,
    statistic: Statistic = np.mean,
    n_resamples: int = 10_000,
    seed: int = 0,
    alternative: Alternative = "two-sided",
) -> PermutationResult:
    """Permutation test that A and B come from the same distribution.

    Paired (same items): the statistic is ``statistic(a - b)`` and the null flips the sign of
    each difference (exchanging a_i and b_i). Independent samples: the statistic is
    ``statistic(a) - statistic(b)`` and the null reassigns the pooled values to the groups.
    The null is enumerated exactly when it has at most ``n_resamples`` arrangements
    (``2**n`` paired, ``C(n_a + n_b, n_a)`` independent), else drawn at random with
    ``np.random.default_rng(seed)``. ``alternative="greater"`` tests A > B.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a and b must be one-dimensional and finite")
    if paired and len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    if min(len(a), len(b)) < 1:
        raise ValueError("a and b must not be empty")
    vectorized = _is_vectorized(statistic)
    rng = np.random.default_rng(seed)
    if paired:
        observed = float(statistic(a - b))
        null, exact = _paired_null(a - b, statistic, vectorized, n_resamples, rng)
    else:
        observed = float(statistic(a)) - float(statistic(b))
        null, exact = _independent_null(a, b, statistic, vectorized, n_resamples, rng)
    p = _pvalue(null, observed, alternative, exact)
    return PermutationResult(observed, p, len(null), exact, alternative)


def mcnemar(a_correct: Any, b_correct: Any, *, exact: bool | None = None) -> McNemarResult:
    """McNemar's test (McNemar 1947) for two classifiers scored on the same items.

    Only the discordant items carry information: under the null each is equally likely to
    favour A or B. ``exact=True`` uses the two-sided binomial test on them (as
    ``scipy.stats.binomtest(only_a, only_a + only_b, 0.5)``); ``exact=False`` the chi-square
    approximation with Edwards' continuity correction, ``(|b - c| - 1)^2 / (b + c)`` (clamped
    at 0 when ``b == c``). ``None`` picks exact when there are fewer than 25 discordant items
    (the usual rule of thumb). No discordant items gives p = 1.
    """
    a, b = np.asarray(a_correct), np.asarray(b_correct)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    for name, x in (("a_correct", a), ("b_correct", b)):
        if not np.isin(x, (0, 1)).all():
            raise ValueError(f"{name} must be binary (bool or 0/1)")
    a, b = a.astype(bool), b.astype(bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    exact = n < 25 if exact is None else exact
    if n == 0:
        return McNemarResult(0.0, 1.0, only_a, only_b, exact)
    if exact:
        k = min(only_a, only_b)
        p = min(1.0, 2 * float(sps.binom.cdf(k, n, 0.5)))
        return McNemarResult(float(k), p, only_a, only_b, True)
    stat = max(abs(only_a - only_b) - 1, 0) ** 2 / n
    return McNemarResult(float(stat), float(sps.chi2.sf(stat, 1)), only_a, only_b, False)
