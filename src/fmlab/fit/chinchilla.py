"""The Chinchilla parametric loss ``L(N, D) = E + A/N^α + B/D^β`` (approach 3).

Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models", §3.3 and D.2) fit the
five parameters by minimizing the Huber loss (δ = 1e-3) between the predicted and observed
log loss, with the prediction in log space, ``LSE(a - α log N, b - β log D, e)`` where
``a = log A, b = log B, e = log E``, running L-BFGS from a grid of initializations and keeping
the best. Besiroglu et al. 2024 ("Chinchilla Scaling: A replication attempt", Epoch AI,
arXiv:2404.10102) refit the points extracted from Hoffmann's figure 4 and found that the
published estimates came from an optimizer that stopped early; their refit (excluding the
five highest-loss points) gives E ≈ 1.82, A ≈ 482, B ≈ 2085, α ≈ 0.348, β ≈ 0.366, with
bootstrap intervals. ``ChinchillaFit`` runs that protocol with every start optimized to a
small gradient norm, in a batched trust-region Newton method (:mod:`fmlab.fit._newton`):
every grid start is screened for a few iterations and the best-ranked run to convergence.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fmlab.fit._common import FitWarning, bootstrap_counts, percentile_ci
from fmlab.fit._newton import LSETerm, huber_lse_gradient, minimize_huber_lse
from fmlab.fit._screen import distinct_optima, minimize_screened
from fmlab.fit.chinchilla_law import (
    HOFFMANN_GRID,
    PARAM_NAMES,
    ChinchillaParams,
    param_columns,
)
from fmlab.fit.validation import check_positive_finite
from fmlab.stats import CI

__all__ = ["HOFFMANN_GRID", "ChinchillaFit", "ChinchillaParams"]


class _Model:
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


def _grid_array(grid: Mapping[str, Sequence[float]]) -> np.ndarray:
    missing = [k for k in PARAM_NAMES if k not in grid]
    if missing:
        raise ValueError(f"grid needs values for {missing}")
    return np.array(list(itertools.product(*(grid[k] for k in PARAM_NAMES))), dtype=float)


def _basin_tolerance(best: float, rtol: float, delta: float, n: float) -> float:
    # relative, plus a floor for exact (noise-free) fits whose best objective is ~0
    return rtol * best + 1e-10 * delta * n


def _edge_report(grid: np.ndarray, theta_best: np.ndarray, in_basin: np.ndarray) -> str | None:
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


def _check_options(fit: ChinchillaFit) -> None:
    """A clear error naming the option and its allowed values (not an overflow later)."""
    rules = {
        "delta": (fit.delta > 0, "> 0"),
        "n_bootstrap": (fit.n_bootstrap >= 0, ">= 0"),
        "bootstrap_starts": (fit.bootstrap_starts >= 0, ">= 0"),
        "confidence": (0 < fit.confidence < 1, "in (0, 1)"),
        "gtol": (fit.gtol > 0, "> 0"),
        "max_iter": (fit.max_iter >= 1, ">= 1"),
        "basin_rtol": (fit.basin_rtol >= 0, ">= 0"),
        "screen_iter": (fit.screen_iter >= 0, ">= 0 (0: every start to the end)"),
        "screen_keep": (0 < fit.screen_keep <= 1, "in (0, 1]"),
    }
    for name, (ok, allowed) in rules.items():
        if not ok:
            raise ValueError(f"ChinchillaFit: {name} must be {allowed}, got {getattr(fit, name)}")


class ChinchillaFit:
    """Fit ``L(N, D) = E + A/N^α + B/D^β`` as Hoffmann et al. (2022) approach 3.

    Parameters
    ----------
    delta: Huber threshold on log-loss residuals (Hoffmann et al.: 1e-3).
    grid: initial values per parameter (``a, b, e, alpha, beta``); every combination is a
        start. Default :data:`HOFFMANN_GRID` (4,500 starts).
    exclude_top_loss: drop this many highest-loss points before fitting (Besiroglu et al.
        drop 5 from the extracted Chinchilla data).
    n_bootstrap: resamples of the data points for percentile CIs; each is refit (0: none).
    bootstrap_starts: each refit starts from the full-data optimum (a warm start, ~7
        iterations) and from this many other distinct local optima found by the grid,
        keeping the best (default 0: on the Chinchilla data the other optima never won
        while costing ~15x more iterations). The other optima come from the grid starts run
        to the end: after screening (``screen_iter`` > 0) there are usually none, so use
        ``screen_iter=0`` with this. :meth:`verify_bootstrap` refits resamples from the whole
        grid to check that the warm start reaches the same optimum.
    gtol: a start has converged when ``max|∇| <= gtol·δ·n`` (see ``minimize_huber_lse``).
    basin_rtol: starts whose objective is within this relative tolerance of the best
        count as having reached the best basin.
    screen_iter, screen_keep: every grid start takes ``screen_iter`` iterations; then only
        the best-ranked ``screen_keep`` fraction (at least 64 starts) runs to convergence,
        slice after slice until at least 3 finished starts reach the best basin
        (:func:`~fmlab.fit._screen.minimize_screened`). ``screen_iter=0``: run every start
        to convergence (Hoffmann's protocol taken literally; ~14x slower, the same optimum
        on the 28 data sets we checked).

    Fitted attributes: ``params_`` (:class:`ChinchillaParams`), ``E_, A_, B_, alpha_, beta_``,
    ``theta_`` (log A, log B, log E, α, β), ``objective_``, ``grad_norm_`` (max-abs gradient
    at the optimum, in theta coordinates), ``converged_``, ``n_starts_``,
    ``n_starts_converged_``, ``n_starts_finished_`` (run to the end; see ``screen_iter``),
    ``n_in_best_basin_`` (finished starts within ``basin_rtol`` of the best), ``at_grid_edge_``,
    ``fit_warnings_``,
    ``starts_`` (one row per grid start), ``n_points_``, ``excluded_`` (positions dropped by
    ``exclude_top_loss``), ``a_, b_, G_`` (compute-optimal allocation), ``ci_`` (dict of
    :class:`~fmlab.stats.CI` for E, A, B, alpha, beta, a, b, G) and ``bootstrap_`` (one row
    per resample).
    """

    def __init__(
        self,
        *,
        delta: float = 1e-3,
        grid: Mapping[str, Sequence[float]] | None = None,
        exclude_top_loss: int = 0,
        n_bootstrap: int = 4000,
        bootstrap_starts: int = 0,
        confidence: float = 0.95,
        seed: int = 0,
        gtol: float = 1e-8,
        max_iter: int = 500,
        basin_rtol: float = 1e-6,
        screen_iter: int = 6,
        screen_keep: float = 0.03,
    ):
        self.delta = delta
        self.grid = HOFFMANN_GRID if grid is None else grid
        self.exclude_top_loss = exclude_top_loss
        self.n_bootstrap = n_bootstrap
        self.bootstrap_starts = bootstrap_starts
        self.confidence = confidence
        self.seed = seed
        self.gtol = gtol
        self.max_iter = max_iter
        self.basin_rtol = basin_rtol
        self.screen_iter = screen_iter
        self.screen_keep = screen_keep
        _check_options(self)

    def _minimize(self, model: _Model, y: np.ndarray, theta0: np.ndarray, weights=None, radius=1.0):
        res = minimize_huber_lse(
            model.terms, y, model.to_internal(theta0), weights=weights, radius=radius,
            **self._solver_options(),
        )  # fmt: skip
        return model.from_internal(res.theta), res

    def _minimize_grid(self, model: _Model, y: np.ndarray, grid: np.ndarray, weights=None):
        n = len(y) if weights is None else float(np.sum(weights))
        res = minimize_screened(
            model.terms, y, model.to_internal(grid), weights=weights,
            basin_tol=lambda best: _basin_tolerance(best, self.basin_rtol, self.delta, n),
            screen_iter=self.screen_iter, keep=self.screen_keep, **self._solver_options(),
        )  # fmt: skip
        return model.from_internal(res.theta), res

    def _solver_options(self) -> dict[str, Any]:
        return {"delta": self.delta, "gtol": self.gtol, "max_iter": self.max_iter}

    def fit(self, N: Any, D: Any, loss: Any) -> ChinchillaFit:
        """Fit to runs with ``N`` parameters, ``D`` training tokens and final ``loss``."""
        arrays = check_positive_finite({"N": N, "D": D, "loss": loss})
        N, D, loss = arrays["N"], arrays["D"], arrays["loss"]
        k = int(self.exclude_top_loss)
        if not 0 <= k < len(loss):
            raise ValueError(f"exclude_top_loss must be in [0, {len(loss)}), got {k}")
        order = np.argsort(-loss, kind="stable")
        self.excluded_ = np.sort(order[:k])
        keep = np.sort(order[k:])
        if len(keep) < 6:
            raise ValueError(f"need at least 6 points to fit 5 parameters, got {len(keep)}")
        self._data = (N[keep], D[keep], np.log(loss[keep]))
        self.n_points_ = len(keep)
        model = _Model(N[keep], D[keep])
        self._fit_grid(model, self._data[2])
        if self.n_bootstrap > 0:
            self._fit_bootstrap(model, self._data[2])
        return self

    def _fit_grid(self, model: _Model, y: np.ndarray) -> None:
        grid = _grid_array(self.grid)  # (S, 5)
        theta, res = self._minimize_grid(model, y, grid)
        fun = np.where(np.isfinite(res.fun) & res.finished, res.fun, np.inf)
        best = int(np.argmin(fun))
        tol = _basin_tolerance(fun[best], self.basin_rtol, self.delta, len(y))
        in_basin = fun - fun[best] <= tol  # among finished starts
        self.theta_ = theta[best]
        # where its quadratic model held (1e-3 to 0.05 on 24 synthetic sets): the bootstrap's
        # warm starts begin there, kept in [1e-3, 1] so a collapsed radius cannot stall them
        self._radius = float(np.clip(res.radius[best], 1e-3, 1.0))
        self.params_ = ChinchillaParams.from_theta(self.theta_)
        for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
            setattr(self, f"{name}_", getattr(self.params_, name))
        self.objective_ = float(fun[best])
        self.grad_norm_ = float(np.abs(self._gradient(model, y, self.theta_)).max())
        self.converged_ = bool(res.converged[best])
        self.n_starts_ = len(grid)
        self.n_starts_converged_ = int(res.converged.sum())
        self.n_starts_finished_ = int(res.finished.sum())
        self.n_in_best_basin_ = int(in_basin.sum())
        self.starts_ = pd.DataFrame(grid, columns=[f"{k}_init" for k in PARAM_NAMES])
        self.starts_[list(PARAM_NAMES)] = theta
        self.starts_["objective"] = res.fun
        self.starts_["converged"] = res.converged
        self.starts_["n_iter"] = res.n_iter
        self.starts_["finished"] = res.finished
        self.starts_["in_best_basin"] = in_basin
        self._other_optima = distinct_optima(
            theta, fun, res.converged, best, tol, self.bootstrap_starts
        )
        self._warn(_edge_report(grid, self.theta_, in_basin))

    def _gradient(self, model: _Model, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return huber_lse_gradient(model.raw_terms, y, theta, delta=self.delta)

    def _warn(self, edge: str | None) -> None:
        self.at_grid_edge_ = edge is not None
        messages = [] if edge is None else [f"{edge}; consider a wider grid"]
        if not self.converged_:
            messages.append(
                f"the best start did not converge (max |gradient| {self.grad_norm_:.2e})"
            )
        self.fit_warnings_ = tuple(messages)
        for m in messages:
            warnings.warn(f"ChinchillaFit: {m}", FitWarning, stacklevel=4)

    def _fit_bootstrap(self, model: _Model, y: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        counts = bootstrap_counts(len(y), self.n_bootstrap, rng)  # (B, n)
        starts = np.vstack([self.theta_[None, :], self._other_optima])  # (k, 5)
        k = len(starts)
        theta, res = self._minimize(
            model,
            y,
            np.tile(starts, (len(counts), 1)),
            weights=np.repeat(counts, k, axis=0),
            radius=self._radius,
        )
        fun = np.where(np.isfinite(res.fun), res.fun, np.inf).reshape(-1, k)
        pick = np.argmin(fun, axis=1)
        rows = np.arange(len(counts)) * k + pick
        self._bootstrap_counts = counts.astype(np.int32)
        self.bootstrap_ = pd.DataFrame(param_columns(theta[rows]))
        self.bootstrap_["objective"] = res.fun[rows]
        self.bootstrap_["converged"] = res.converged[rows]
        self.bootstrap_["start"] = pick  # 0: the full-data optimum; i > 0: i-th other optimum
        self.ci_: dict[str, CI] = {
            name: percentile_ci(
                getattr(self, f"{name}_"), self.bootstrap_[name], self.confidence, len(y)
            )
            for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G")
        }

    def verify_bootstrap(self, n_check: int = 3, grid=None) -> pd.DataFrame:
        """Refit the first ``n_check`` bootstrap resamples from the whole grid.

        Shows whether the warm-started refits reached the same optimum as the full
        protocol would: one row per resample with both objectives and their relative
        difference (``> 0`` means the grid found a lower objective).
        """
        if not hasattr(self, "bootstrap_"):
            raise RuntimeError("fit with n_bootstrap > 0 first")
        N, D, y = self._data
        model = _Model(N, D)
        grid = _grid_array(self.grid if grid is None else grid)
        rows = []
        for i in range(min(n_check, len(self.bootstrap_))):
            w = self._bootstrap_counts[i].astype(float)
            theta, res = self._minimize_grid(model, y, grid, weights=w)
            best = int(np.nanargmin(np.where(res.finished, res.fun, np.nan)))
            warm = float(self.bootstrap_["objective"].iloc[i])
            rows.append(
                {
                    "resample": i,
                    "warm_objective": warm,
                    "grid_objective": float(res.fun[best]),
                    "rel_diff": (warm - res.fun[best]) / max(abs(res.fun[best]), 1e-300),
                    "max_param_diff": float(np.abs(theta[best] - self._warm_theta(i)).max()),
                }
            )
        return pd.DataFrame(rows)

    def _warm_theta(self, i: int) -> np.ndarray:
        row = self.bootstrap_.iloc[i]
        return ChinchillaParams(row.E, row.A, row.B, row.alpha, row.beta).theta

    def predict(self, N: Any, D: Any) -> np.ndarray:
        """Predicted loss for ``N`` parameters and ``D`` tokens."""
        return self.params_.predict(N, D)

    def compute_optimal(self, C: Any) -> tuple[np.ndarray, np.ndarray]:
        """Compute-optimal ``(N_opt, D_opt)`` for FLOP budgets ``C`` (``C ≈ 6 N D``)."""
        return self.params_.compute_optimal(C)

    def compute_optimal_ci(self, C: float) -> dict[str, CI]:
        """Percentile bootstrap CIs of ``N_opt(C)`` and ``D_opt(C)`` for one budget."""
        n_opt, d_opt = self.compute_optimal(C)
        c6 = C / 6
        b = self.bootstrap_
        return {
            "N_opt": percentile_ci(n_opt, b.G * c6**b.a, self.confidence, self.n_points_),
            "D_opt": percentile_ci(d_opt, c6**b.b / b.G, self.confidence, self.n_points_),
        }

    def summary(self) -> dict[str, Any]:
        """Estimates, CIs and diagnostics as a JSON-friendly dict."""
        out: dict[str, Any] = {
            name: getattr(self, f"{name}_") for name in ("E", "A", "B", "alpha", "beta")
        }
        out |= {"a": self.a_, "b": self.b_, "G": self.G_, "objective": self.objective_}
        out |= {
            "grad_norm": self.grad_norm_,
            "converged": self.converged_,
            "n_points": self.n_points_,
            "n_starts": self.n_starts_,
            "n_starts_converged": self.n_starts_converged_,
            "n_starts_finished": self.n_starts_finished_,
            "n_in_best_basin": self.n_in_best_basin_,
            "at_grid_edge": self.at_grid_edge_,
            "warnings": list(self.fit_warnings_),
        }
        if hasattr(self, "ci_"):
            out["ci"] = {k: [c.low, c.high] for k, c in self.ci_.items()}
            out["confidence"] = self.confidence
            out["bootstrap_converged"] = float(self.bootstrap_["converged"].mean())
        return out
