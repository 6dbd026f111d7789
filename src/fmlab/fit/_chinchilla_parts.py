"""Pieces of :class:`fmlab.fit.ChinchillaFit`: the model in centred coordinates, the grid of
starts, the tolerance that defines the best basin, the grid-edge diagnostic and the check of
the options."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fmlab.fit._newton import LSETerm
from fmlab.fit.chinchilla_law import PARAM_NAMES

__all__ = ["Model", "basin_tolerance", "check_options", "edge_report", "grid_array"]


class Model:
    """The log-sum-exp model on centred log N and log D.

    Centring (``a' = a - α·mean(log N)``) makes the intercept and the exponent nearly
    orthogonal, which keeps the trust region round; results are mapped back.
    """

    def __init__(self, N: np.ndarray, D: np.ndarray):
        x1, x2 = np.log(N), np.log(D)
        self.c1, self.c2 = x1.mean(), x2.mean()
        one = np.ones_like(x1)
        self.terms = [
            LSETerm((0, 3), np.stack([one, -(x1 - self.c1)], 1)),
            LSETerm((1, 4), np.stack([one, -(x2 - self.c2)], 1)),
            LSETerm((2,), one[:, None]),
        ]
        self.raw_terms = [
            LSETerm((0, 3), np.stack([one, -x1], 1)),
            LSETerm((1, 4), np.stack([one, -x2], 1)),
            LSETerm((2,), one[:, None]),
        ]

    def to_internal(self, theta: np.ndarray) -> np.ndarray:
        t = np.array(theta, dtype=float, ndmin=2)
        t[:, 0] -= t[:, 3] * self.c1
        t[:, 1] -= t[:, 4] * self.c2
        return t

    def from_internal(self, theta: np.ndarray) -> np.ndarray:
        t = np.array(theta, dtype=float, ndmin=2)
        t[:, 0] += t[:, 3] * self.c1
        t[:, 1] += t[:, 4] * self.c2
        return t


def grid_array(grid: Mapping[str, Sequence[float]]) -> np.ndarray:
    missing = [k for k in PARAM_NAMES if k not in grid]
    if missing:
        raise ValueError(f"grid needs values for {missing}")
    return np.array(list(itertools.product(*(grid[k] for k in PARAM_NAMES))), dtype=float)


def basin_tolerance(best: float, rtol: float, delta: float, n: float) -> float:
    # relative, plus a floor for exact (noise-free) fits whose best objective is ~0
    return rtol * best + 1e-10 * delta * n


def edge_report(grid: np.ndarray, theta_best: np.ndarray, in_basin: np.ndarray) -> str | None:
    """Why the grid may not cover the optimum, or None.

    Either the optimum lies on or outside the grid's box, or every start that reached it is
    a grid point on the box's boundary (judged on the parameters with at least 3 grid
    values, which have interior points): a wider grid could hold better basins.
    """
    lo, hi = grid.min(0), grid.max(0)
    inside = (lo < theta_best) & (theta_best < hi)
    outside = [k for k, ok in zip(PARAM_NAMES, inside, strict=True) if not ok]
    if outside:
        return f"the best fit lies on or outside the grid's range in {outside}"
    wide = np.array([len(np.unique(col)) >= 3 for col in grid.T])
    on_edge = ((grid == lo) | (grid == hi))[:, wide].any(1)
    if wide.any() and in_basin.any() and on_edge[in_basin].all():
        return "every start that reached the best fit is on the edge of the grid"
    return None


def check_options(fit: Any) -> None:
    """A clear error naming the option and its allowed values (not an overflow later)."""
    rules = {
        "delta": (0 < fit.delta < math.inf, "a finite number > 0"),
        "n_bootstrap": (fit.n_bootstrap >= 0, ">= 0"),
        "bootstrap_starts": (fit.bootstrap_starts >= 0, ">= 0"),
        "confidence": (0 < fit.confidence < 1, "in (0, 1)"),
        "gtol": (0 < fit.gtol < math.inf, "a finite number > 0"),
        "max_iter": (fit.max_iter >= 1, ">= 1"),
        "basin_rtol": (fit.basin_rtol >= 0, ">= 0"),
        "screen_iter": (fit.screen_iter >= 0, ">= 0 (0: every start to the end)"),
        "screen_keep": (0 < fit.screen_keep <= 1, "in (0, 1]"),
        "max_points": (fit.max_points is None or fit.max_points >= 64, "None or >= 64"),
    }
    for name, (ok, allowed) in rules.items():
        if not ok:
            raise ValueError(f"ChinchillaFit: {name} must be {allowed}, got {getattr(fit, name)}")
