"""Sharp transitions in training curves: sigmoid fits and a mean-shift changepoint.

Grokking (Power et al. 2022) is a late, sudden rise of test accuracy; the formation of
induction heads (Olsson et al. 2022) is a sudden drop of in-context loss. Both are summarized
by *when* the change happens and *how fast*: ``y = lo + (hi - lo) · σ((g(t) - g(t0)) / w)``
with ``g = log`` (training steps span decades) or the identity. ``lo`` and ``hi`` are the
levels before and after (``hi < lo`` for a drop), ``t0`` the midpoint, ``w`` the width in
units of ``g``: the curve goes from 10 % to 90 % of the way over ``2 w ln 9``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from fmlab.fit.validation import check_positive_finite

__all__ = ["Changepoint", "TransitionFit", "fit_changepoint"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))  # overflow-free logistic


def _crossing(z: np.ndarray, y: np.ndarray, level: float) -> float | None:
    """First z where the curve crosses ``level`` (linear interpolation), or None."""
    above = y >= level
    flips = np.flatnonzero(above[1:] != above[:-1])
    if len(flips) == 0:
        return None
    i = flips[0]
    frac = (level - y[i]) / (y[i + 1] - y[i])
    return float(z[i] + frac * (z[i + 1] - z[i]))


def _initial_guess(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(lo, hi, z0, log w)`` from the data: end levels, halfway and quartile crossings.

    The levels are medians of the first and last 10 % of points (robust to noise); the
    midpoint is where the curve first crosses halfway; the width comes from the 25 %→75 %
    crossings, which a logistic spans over ``2 w ln 3``.
    """
    k = max(2, len(z) // 10)
    lo, hi = float(np.median(y[:k])), float(np.median(y[-k:]))
    span = np.ptp(z)
    z0 = _crossing(z, y, lo + 0.5 * (hi - lo))
    z0 = float(np.median(z)) if z0 is None else z0
    q1, q3 = _crossing(z, y, lo + 0.25 * (hi - lo)), _crossing(z, y, lo + 0.75 * (hi - lo))
    width = abs(q3 - q1) / (2 * math.log(3)) if q1 is not None and q3 is not None else 0
    width = min(max(width, span / 100), span)
    return np.array([lo, hi, z0, math.log(width)])


def _width(lw: float) -> float:
    """exp(log-width), clipped: on a flat curve the optimizer can push the width to
    infinity (any width fits), which must not overflow."""
    return math.exp(min(max(lw, -50.0), 50.0))


def _residuals(p, z, y):
    lo, hi, z0, lw = p
    return lo + (hi - lo) * _sigmoid((z - z0) / _width(lw)) - y


def _jacobian(p, z, y):
    lo, hi, z0, lw = p
    w = _width(lw)
    s = _sigmoid((z - z0) / w)
    ds = (hi - lo) * s * (1 - s)
    return np.stack([1 - s, s, -ds / w, -ds * (z - z0) / w], 1)


class TransitionFit:
    """Least-squares fit of ``y = lo + (hi - lo) · σ((g(t) - g(t0)) / w)``.

    ``log_x=True`` uses ``g = log`` (requires ``t > 0``). Starts from the data-driven guess
    (see ``_initial_guess``) and from midpoints at the quartiles of ``g(t)`` and widths ×/÷ 4,
    keeping the best. Fitted: ``t0_`` (midpoint, in units of t), ``width_`` (``w``, in units
    of ``g(t)``), ``lo_, hi_``, ``onset_`` and ``end_`` (t at 10 % and 90 % of the way),
    ``r2_``, ``rmse_``, ``converged_``.
    """

    def __init__(self, *, log_x: bool = True):
        self.log_x = log_x

    def _g(self, t: np.ndarray) -> np.ndarray:
        return np.log(t) if self.log_x else t

    def _g_inv(self, z: float) -> float:
        return float(math.exp(min(z, 700.0))) if self.log_x else float(z)

    def fit(self, t: Any, y: Any) -> TransitionFit:
        arrays = check_positive_finite({"t": t, "y": y}, positive=["t"] if self.log_x else [])
        order = np.argsort(arrays["t"], kind="stable")
        z, y = self._g(arrays["t"][order]), arrays["y"][order]
        if len(z) < 5 or np.ptp(z) == 0:
            raise ValueError("need at least 5 points at distinct t to fit a transition")
        guess = _initial_guess(z, y)
        starts = [guess]
        for q in (0.25, 0.5, 0.75):
            for dw in (-math.log(4), 0.0, math.log(4)):
                starts.append(guess + np.array([0, 0, 0, dw]))
                starts[-1][2] = np.quantile(z, q)
        fits = [
            least_squares(_residuals, p, jac=_jacobian, args=(z, y), method="lm") for p in starts
        ]
        best = min(fits, key=lambda r: r.cost)
        self.lo_, self.hi_, z0, lw = (float(v) for v in best.x)
        self.width_ = _width(lw)
        self.t0_ = self._g_inv(z0)
        half = self.width_ * math.log(9)
        self.onset_, self.end_ = self._g_inv(z0 - half), self._g_inv(z0 + half)
        resid = best.fun
        self.rmse_ = float(np.sqrt(np.mean(resid**2)))
        self.r2_ = float(1 - resid @ resid / np.sum((y - y.mean()) ** 2))
        self.converged_ = bool(best.success)
        return self

    def predict(self, t: Any) -> np.ndarray:
        z = self._g(np.asarray(t, dtype=float))
        z0 = self._g(np.float64(self.t0_))
        return self.lo_ + (self.hi_ - self.lo_) * _sigmoid((z - z0) / self.width_)


@dataclass(frozen=True)
class Changepoint:
    """A single shift in the mean: ``before`` up to (excluding) ``index``, ``after`` from it."""

    index: int
    t: float
    before: float
    after: float
    explained: float  # fraction of the variance removed by the split


def fit_changepoint(t: Any, y: Any, *, min_size: int = 2) -> Changepoint:
    """Least-squares single changepoint in the mean (the one-split case of binary
    segmentation; Killick et al. 2012 review the family). Model-free companion of
    :class:`TransitionFit` for curves that jump rather than follow a sigmoid.
    """
    arrays = check_positive_finite({"t": t, "y": y}, positive=[])
    order = np.argsort(arrays["t"], kind="stable")
    t, y = arrays["t"][order], arrays["y"][order]
    n = len(y)
    if n < 2 * min_size:
        raise ValueError(f"need at least {2 * min_size} points, got {n}")
    k = np.arange(min_size, n - min_size + 1)  # split before index k
    c1, c2 = np.cumsum(y), np.cumsum(y * y)
    sse_left = c2[k - 1] - c1[k - 1] ** 2 / k
    right_sum, right_sq = c1[-1] - c1[k - 1], c2[-1] - c2[k - 1]
    sse = sse_left + right_sq - right_sum**2 / (n - k)
    i = int(k[np.argmin(sse)])
    total = float(np.sum((y - y.mean()) ** 2))
    explained = 1 - float(sse.min()) / total if total > 0 else 0.0
    return Changepoint(i, float(t[i]), float(y[:i].mean()), float(y[i:].mean()), explained)
