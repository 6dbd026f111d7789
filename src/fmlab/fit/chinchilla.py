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
Above ``max_points`` points the grid and the bootstrap run on a subsample and the optimum is
polished on every point (:mod:`fmlab.fit._large`); memory is estimated and checked first.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fmlab.fit import _large
from fmlab.fit._chinchilla_parts import (
    Model,
    basin_tolerance,
    check_options,
    edge_report,
    grid_array,
)
from fmlab.fit._common import (
    BOOT_ELEMENTS,
    FitWarning,
    bootstrap_count_batches,
    bootstrap_counts,
    count_bytes,
    percentile_ci,
)
from fmlab.fit._newton import huber_lse_gradient, minimize_huber_lse, working_memory
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


# Other optima of a subsample's grid that are also polished on every point.
_POLISH_OTHERS = 3


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
    max_points: above this many points (after ``exclude_top_loss``), the grid and the
        bootstrap run on a uniform random subsample of ``max_points`` points, the best
        optima found there are polished on every point, and the bootstrap draws are
        rescaled by ``sqrt(max_points / n)`` (:mod:`fmlab.fit._large`); ``None``: never.
    max_memory: refuse a fit whose estimated peak memory (:meth:`memory_estimate`) exceeds
        this (bytes, or text such as ``"8GiB"``); default ``$FMLAB_FIT_MAX_MEMORY`` or 4 GiB.
    progress: ``progress(stage, done, total)`` is called as the fit advances (for a display).

    Fitted attributes: ``params_`` (:class:`ChinchillaParams`), ``E_, A_, B_, alpha_, beta_``,
    ``theta_`` (log A, log B, log E, α, β), ``objective_``, ``grad_norm_`` (max-abs gradient
    at the optimum, in theta coordinates), ``converged_``, ``n_starts_``,
    ``n_starts_converged_``, ``n_starts_finished_`` (run to the end; see ``screen_iter``),
    ``n_in_best_basin_`` (finished starts within ``basin_rtol`` of the best), ``at_grid_edge_``,
    ``subsample_`` (points the grid and bootstrap used, or None: all; then the grid's
    attributes describe the subsample and ``objective_`` etc. the polished full-data fit),
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
        max_points: int | None = _large.DEFAULT_MAX_POINTS,
        max_memory: str | float | None = None,
        progress: _large.Progress | None = None,
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
        self.max_points = max_points
        self.max_memory = max_memory
        self.progress = progress
        check_options(self)

    def _minimize(self, model: Model, y, theta0, weights=None, radius=1.0, **options):
        res = minimize_huber_lse(
            model.terms, y, model.to_internal(theta0), weights=weights, radius=radius,
            **self._solver_options(), **options,
        )  # fmt: skip
        return model.from_internal(res.theta), res

    def _minimize_grid(self, model: Model, y: np.ndarray, grid: np.ndarray, weights=None):
        n = len(y) if weights is None else float(np.sum(weights))
        res = minimize_screened(
            model.terms, y, model.to_internal(grid), weights=weights,
            basin_tol=lambda best: basin_tolerance(best, self.basin_rtol, self.delta, n),
            screen_iter=self.screen_iter, keep=self.screen_keep, progress=self.progress,
            **self._solver_options(),
        )  # fmt: skip
        return model.from_internal(res.theta), res

    def _solver_options(self) -> dict[str, Any]:
        return {"delta": self.delta, "gtol": self.gtol, "max_iter": self.max_iter}

    def fit(self, N: Any, D: Any, loss: Any) -> ChinchillaFit:
        """Fit to runs with ``N`` parameters, ``D`` training tokens and final ``loss``."""
        arrays = check_positive_finite({"N": N, "D": D, "loss": loss})
        N, D, loss = arrays["N"], arrays["D"], arrays["loss"]
        k = int(self.exclude_top_loss)
        if len(loss) < 6:
            raise ValueError(f"need at least 6 points to fit 5 parameters, got {len(loss)}")
        if not 0 <= k < len(loss):
            raise ValueError(f"exclude_top_loss must be in [0, {len(loss)}), got {k}")
        order = np.argsort(-loss, kind="stable")
        self.excluded_ = np.sort(order[:k])
        keep = np.sort(order[k:])
        if len(keep) < 6:
            raise ValueError(f"need at least 6 points to fit 5 parameters, got {len(keep)}")
        n = len(keep)
        _large.check_memory(
            f"ChinchillaFit on {n:,} points", self.memory_estimate(n), self.max_memory,
            "use fewer bootstrap resamples",
        )  # fmt: skip
        self._data = (N[keep], D[keep], np.log(loss[keep]))
        self.n_points_ = n
        model, y = Model(N[keep], D[keep]), self._data[2]
        sub = _large.subsample(n, self.max_points, self.seed)
        self.subsample_ = None if sub is None else len(sub)
        if sub is None:
            self._fit_grid(model, y)
            self._boot_data = self._data
            if self.n_bootstrap > 0:
                self._fit_bootstrap(model, y, self.theta_)
            return self
        self._boot_data = (N[keep][sub], D[keep][sub], y[sub])
        sub_model = Model(*self._boot_data[:2])
        center = self._fit_grid(sub_model, y[sub], full=(model, y))
        if self.n_bootstrap > 0:
            self._fit_bootstrap(sub_model, y[sub], center)
        return self

    def memory_estimate(self, n: int) -> int:
        """Peak bytes of :meth:`fit` on ``n`` points, about (what ``max_memory`` limits)."""
        S = int(np.prod([len(v) for v in self.grid.values()]))
        n = max(n, 1)
        m = n if self.max_points is None else min(n, self.max_points)
        k = 1 + self.bootstrap_starts
        grid = working_memory(m, S, (2, 2, 1)) + 8 * 40 * S
        polish = working_memory(n, 1 + _POLISH_OTHERS, (2, 2, 1)) if m < n else 0
        batch = max(1, min(self.n_bootstrap, BOOT_ELEMENTS // (m * k)))
        boot = working_memory(m, batch * k, (2, 2, 1), weight_rows=batch * k)
        boot = max(boot + 8 * batch * m * k * (k > 1), count_bytes(m, batch))
        boot += 8 * 16 * self.n_bootstrap
        return 8 * 24 * (n + m * (m < n)) + max(grid, polish, boot if self.n_bootstrap else 0)

    def _fit_grid(self, model: Model, y: np.ndarray, full=None) -> np.ndarray:
        """The grid on ``(model, y)``; ``full``: the (model, y) of every point, on which the
        best optima are polished. Returns the grid's best optimum."""
        grid = grid_array(self.grid)  # (S, 5)
        theta, res = self._minimize_grid(model, y, grid)
        fun = np.where(np.isfinite(res.fun) & res.finished, res.fun, np.inf)
        best = int(np.argmin(fun))
        tol = basin_tolerance(fun[best], self.basin_rtol, self.delta, len(y))
        in_basin = fun - fun[best] <= tol  # among finished starts
        self.theta_, objective, converged = theta[best], fun[best], res.converged[best]
        # where its quadratic model held (1e-3 to 0.05 on 24 synthetic sets): the bootstrap's
        # warm starts begin there, kept in [1e-3, 1] so a collapsed radius cannot stall them
        self._radius = float(np.clip(res.radius[best], 1e-3, 1.0))
        if full is not None:
            model, y = full
            others = distinct_optima(theta, fun, res.converged, best, tol, _POLISH_OTHERS)
            starts = np.vstack([theta[best][None, :], others])
            stage = f"polishing on all {len(y):,} points"
            report = _large.stage_progress(self.progress, stage, 0, len(starts), len(starts))
            th, pol = self._minimize(
                model, y, starts, radius=self._radius, coarse_gtol=None, progress=report
            )
            j = int(np.argmin(np.where(np.isfinite(pol.fun), pol.fun, np.inf)))
            self.theta_, objective, converged = th[j], pol.fun[j], pol.converged[j]
        self.params_ = ChinchillaParams.from_theta(self.theta_)
        for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
            setattr(self, f"{name}_", getattr(self.params_, name))
        self.objective_ = float(objective)
        self.grad_norm_ = float(np.abs(self._gradient(model, y, self.theta_)).max())
        self.converged_ = bool(converged)
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
        self._warn(edge_report(grid, self.theta_, in_basin))
        return theta[best]

    def _gradient(self, model: Model, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
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

    def _fit_bootstrap(self, model: Model, y: np.ndarray, center: np.ndarray) -> None:
        """Refit resamples of ``y`` warm-started at ``center`` (its optimum), streamed in
        batches of at most ``BOOT_ELEMENTS`` weights; subsampled: rescaled draws."""
        rng = np.random.default_rng(self.seed)
        starts = np.vstack([center[None, :], self._other_optima])  # (k, 5)
        k, B, parts, lo = len(starts), self.n_bootstrap, [], 0
        stage = f"bootstrap ({B} resamples)"
        for counts in bootstrap_count_batches(len(y), B, rng, BOOT_ELEMENTS // k):  # (b, n)
            theta, res = self._minimize(
                model,
                y,
                np.tile(starts, (len(counts), 1)),
                weights=counts if k == 1 else np.repeat(counts, k, axis=0),
                radius=self._radius,
                progress=_large.stage_progress(self.progress, stage, lo, len(counts), B),
            )
            fun = np.where(np.isfinite(res.fun), res.fun, np.inf).reshape(-1, k)
            pick = np.argmin(fun, axis=1)
            rows = np.arange(len(counts)) * k + pick
            parts.append((theta[rows], res.fun[rows], res.converged[rows], pick))
            lo += len(counts)
            del counts  # before the next batch is drawn
        theta, fun, converged, pick = (np.concatenate(p) for p in zip(*parts, strict=True))
        self._boot_theta = theta  # the refits' own optima (before any rescaling)
        if self.subsample_ is not None:
            theta = _large.rescaled_draws(self.theta_, center, theta, len(y), self.n_points_)
        self.bootstrap_ = pd.DataFrame(param_columns(theta))
        self.bootstrap_["objective"] = fun
        self.bootstrap_["converged"] = converged
        self.bootstrap_["start"] = pick  # 0: the full-data optimum; i > 0: i-th other optimum
        self.ci_: dict[str, CI] = {
            name: percentile_ci(
                getattr(self, f"{name}_"), self.bootstrap_[name], self.confidence, self.n_points_
            )
            for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G")
        }

    def _resample_counts(self, k: int) -> np.ndarray:
        """The weights (k, n) of the first ``k`` bootstrap resamples, drawn again."""
        n = len(self._boot_data[2])
        return bootstrap_counts(n, min(k, self.n_bootstrap), np.random.default_rng(self.seed))

    def verify_bootstrap(self, n_check: int = 3, grid=None) -> pd.DataFrame:
        """Refit the first ``n_check`` bootstrap resamples from the whole grid.

        Shows whether the warm-started refits reached the same optimum as the full
        protocol would: one row per resample with both objectives and their relative
        difference (``> 0`` means the grid found a lower objective).
        """
        if not hasattr(self, "bootstrap_"):
            raise RuntimeError("fit with n_bootstrap > 0 first")
        N, D, y = self._boot_data  # the subsample, if the bootstrap ran on one
        model = Model(N, D)
        grid = grid_array(self.grid if grid is None else grid)
        rows = []
        weights = self._resample_counts(n_check)
        for i in range(min(n_check, len(self.bootstrap_))):
            w = weights[i]
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
        if self.subsample_ is not None:
            return self._boot_theta[i]
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
        if self.subsample_ is not None:
            out["subsample"] = self.subsample_
        if hasattr(self, "ci_"):
            out["ci"] = {k: [c.low, c.high] for k, c in self.ci_.items()}
            out["confidence"] = self.confidence
            out["bootstrap_converged"] = float(self.bootstrap_["converged"].mean())
        return out
