"""Abrupt or smooth? A transition model against a smooth power law, by held-out error.

Wei et al. 2022 call an ability *emergent* when a metric stays near its floor over a range
of scales and then rises sharply; Schaeffer et al. 2023 argue that the sharpness often
belongs to the metric, not the model: the same outputs scored by a continuous metric
follow a smooth power law. To decide which shape a curve has, both are fitted to an
*error* ``e(x) >= 0`` (0 = perfect: ``1 - accuracy``, ``-log p``, an edit distance, a
Brier score) against scale ``x > 0`` (parameters, compute):

* **smooth**: ``e = A x^-α``, a straight line in log-log axes (Kaplan et al. 2020), two
  parameters, fitted by least squares on ``e`` (started from the log-space fit);
* **transition**: ``e = lo + (hi - lo) σ((log x - log x0) / w)``, four parameters
  (:class:`fmlab.fit.TransitionFit`), which also covers a step (``w → 0``).

They are compared by leave-one-out error: each point is predicted by both models fitted
to the other points, and ``log_ratio = log(RMSE_smooth / RMSE_transition)`` is > 0 when
the transition predicts held-out scales better. Leave-one-out charges the transition
model for its two extra parameters without an information criterion's asymptotics,
which few points (6-10 scales) do not reach. :func:`bootstrap_log_ratio` repeats the
comparison on resampled curves for a percentile CI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from fmlab.fit.power import fit_loglinear
from fmlab.fit.transitions import TransitionFit, _initial_guess, _jacobian, _residuals
from fmlab.fit.validation import check_positive_finite
from fmlab.stats import CI

__all__ = ["ShapeComparison", "bootstrap_log_ratio", "compare_shapes", "power_fit"]

MIN_POINTS = 6  # leave-one-out refits the 4-parameter transition on n - 1 >= 5 points


@dataclass(frozen=True)
class ShapeComparison:
    """Held-out (leave-one-out) RMSE of each model on the error scale, and the verdict."""

    smooth_rmse: float
    transition_rmse: float
    log_ratio: float  # log(smooth / transition): > 0 favours the transition
    smooth_in_sample_rmse: float
    transition_in_sample_rmse: float
    n_points: int


def power_fit(lx: np.ndarray, e: np.ndarray, floor: float) -> tuple[float, float]:
    """``log e = a + s log x`` by least squares on ``e`` itself, started from the fit of
    ``log max(e, floor)``; returns ``(a, s)``."""
    a0, s0 = fit_loglinear(lx, np.log(np.maximum(e, floor)))
    if not np.isfinite(s0):
        a0, s0 = math.log(max(float(e.mean()), floor)), 0.0

    def resid(p: np.ndarray) -> np.ndarray:
        return np.exp(np.clip(p[0] + p[1] * lx, -700, 700)) - e

    def jac(p: np.ndarray) -> np.ndarray:
        f = np.exp(np.clip(p[0] + p[1] * lx, -700, 700))
        return np.stack([f, f * lx], 1)

    r = least_squares(resid, np.array([a0, s0]), jac=jac, method="lm")
    return float(r.x[0]), float(r.x[1])


def _sigmoid_fit(z: np.ndarray, e: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """(lo, hi, z0, log w) of the transition on ``z = log x``; from ``start`` and the
    data-driven guess when a start is given (the leave-one-out refits), else from the
    full multi-start :class:`TransitionFit`."""
    if start is None:
        f = TransitionFit(log_x=False).fit(z, e)
        return np.array([f.lo_, f.hi_, f.t0_, math.log(f.width_)])  # t0_ is z0 here
    fits = [
        least_squares(_residuals, p, jac=_jacobian, args=(z, e), method="lm")
        for p in (start, _initial_guess(z, e))
    ]
    return min(fits, key=lambda r: r.cost).x


def _sigmoid_predict(p: np.ndarray, z: np.ndarray) -> np.ndarray:
    return _residuals(p, z, np.zeros_like(z))


def compare_shapes(x: Any, e: Any, *, floor: float = 1e-4) -> ShapeComparison:
    """Leave-one-out comparison of the smooth power law and the transition on ``e(x)``.

    ``floor`` only keeps the starting log-space fit finite where ``e`` is 0."""
    arrays = check_positive_finite({"x": x, "e": e}, positive=["x"])
    order = np.argsort(arrays["x"], kind="stable")
    lx, e = np.log(arrays["x"][order]), arrays["e"][order]
    n = len(lx)
    if n < MIN_POINTS or np.ptp(lx) == 0:
        raise ValueError(f"need at least {MIN_POINTS} points at distinct x, got {n}")
    if np.any(e < 0):
        raise ValueError("e must be an error (>= 0, 0 = perfect)")
    a, s = power_fit(lx, e, floor)
    full = _sigmoid_fit(lx, e, None)
    held_s, held_t = np.empty(n), np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        ai, si = power_fit(lx[keep], e[keep], floor)
        held_s[i] = math.exp(min(ai + si * lx[i], 700.0))
        held_t[i] = _sigmoid_predict(_sigmoid_fit(lx[keep], e[keep], full), lx[i : i + 1])[0]
    rs = float(np.sqrt(np.mean((held_s - e) ** 2)))
    rt = float(np.sqrt(np.mean((held_t - e) ** 2)))
    tiny = 1e-12 * (float(np.abs(e).max()) + 1e-300)
    return ShapeComparison(
        smooth_rmse=rs,
        transition_rmse=rt,
        log_ratio=math.log(max(rs, tiny) / max(rt, tiny)),
        smooth_in_sample_rmse=float(np.sqrt(np.mean((np.exp(a + s * lx) - e) ** 2))),
        transition_in_sample_rmse=float(np.sqrt(np.mean((_sigmoid_predict(full, lx) - e) ** 2))),
        n_points=n,
    )


def bootstrap_log_ratio(
    x: Any, curves: Any, *, confidence: float = 0.95, floor: float = 1e-4
) -> tuple[CI, np.ndarray]:
    """``log_ratio`` of each resampled curve (rows of ``curves``, (B, n)), and its
    percentile interval around the first row's value (pass the observed curve first)."""
    E = np.atleast_2d(np.asarray(curves, dtype=float))
    ratios = np.array([compare_shapes(x, row, floor=floor).log_ratio for row in E])
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(ratios[1:], [tail, 1 - tail]) if len(ratios) > 2 else (np.nan,) * 2
    return CI(
        float(ratios[0]), float(lo), float(hi), confidence, "percentile", len(ratios) - 1
    ), ratios
