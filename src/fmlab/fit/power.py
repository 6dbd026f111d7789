"""One-variable power laws: ``L = A x^-α`` and ``L = E + A x^-α``.

The pure law is a straight line in log-log space, fit by least squares in closed form (Kaplan
et al. 2020 fit their single-variable laws this way). The saturating law adds an irreducible
term ``E`` (the entropy of the data, Hoffmann et al. 2022) and is fit like the Chinchilla law:
Huber loss between predicted and observed log L with the prediction ``LSE(a - α log x, e)``
(``a = log A, e = log E``), from a few data-driven starts, by the batched trust-region Newton
method of :mod:`fmlab.fit._newton`. Both report percentile bootstrap CIs over the points.

Many points: the bootstrap weights are drawn and used in batches of at most
``BOOT_ELEMENTS`` (resample, point) pairs, the same draws as all at once; above
``max_points`` points the saturating law runs its starts and its bootstrap on a subsample and
polishes the optimum on every point (:mod:`fmlab.fit._large`). Memory is checked first.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np

from fmlab.fit import _large
from fmlab.fit._common import (
    BOOT_ELEMENTS,
    FitWarning,
    bootstrap_count_batches,
    count_bytes,
    percentile_ci,
)
from fmlab.fit._newton import LSETerm, huber_lse_gradient, minimize_huber_lse, working_memory
from fmlab.fit.validation import check_positive_finite
from fmlab.stats import CI

__all__ = ["PowerLaw", "SaturatingPowerLaw", "fit_loglinear"]


def fit_loglinear(lx: np.ndarray, ly: np.ndarray, w: np.ndarray | None = None):
    """Weighted least squares ``ly = c + s · lx``, batched over the rows of ``w`` (B, n).

    Returns intercepts and slopes, each (B,) (or scalars when ``w`` is None); rows whose
    ``lx`` has no spread give NaN.
    """
    single = w is None
    w = np.ones((1, len(lx))) if single else np.atleast_2d(w)
    sw = w.sum(-1)
    mx, my = (w @ lx) / sw, (w @ ly) / sw
    sxx = w @ (lx * lx) / sw - mx**2
    sxy = w @ (lx * ly) / sw - mx * my
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(sxx > 1e-12 * (mx**2 + 1), sxy / sxx, np.nan)
    intercept = my - slope * mx
    return (intercept[0], slope[0]) if single else (intercept, slope)


class PowerLaw:
    """``y = A x^-α``, least squares in log space.

    Fitted: ``A_, alpha_``, ``r2_`` and ``residual_std_`` (both in log space), ``n_points_``,
    ``ci_`` (percentile bootstrap CIs of ``A`` and ``alpha``) and ``bootstrap_`` (B, 2).
    ``max_memory``: refuse a fit whose :meth:`memory_estimate` exceeds it (bytes or text
    such as ``"8GiB"``; default ``$FMLAB_FIT_MAX_MEMORY`` or 4 GiB); ``progress(stage, done,
    total)`` hears how far the bootstrap is.
    """

    def __init__(
        self,
        *,
        n_bootstrap: int = 2000,
        confidence: float = 0.95,
        seed: int = 0,
        max_memory: str | float | None = None,
        progress: _large.Progress | None = None,
    ):
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.seed = seed
        self.max_memory = max_memory
        self.progress = progress

    def memory_estimate(self, n: int) -> int:
        """Peak bytes of :meth:`fit` on ``n`` points, about."""
        batch = min(self.n_bootstrap, max(1, BOOT_ELEMENTS // max(n, 1)))
        return 8 * 16 * n + count_bytes(n, batch) * (self.n_bootstrap > 0) + 32 * self.n_bootstrap

    def fit(self, x: Any, y: Any) -> PowerLaw:
        arrays = check_positive_finite({"x": x, "y": y})
        lx, ly = np.log(arrays["x"]), np.log(arrays["y"])
        if len(lx) < 3 or np.ptp(lx) == 0:
            raise ValueError("need at least 3 points with distinct x to fit a power law")
        n = len(lx)
        _large.check_memory(f"PowerLaw on {n:,} points", self.memory_estimate(n), self.max_memory)
        c, s = fit_loglinear(lx, ly)
        self.A_, self.alpha_ = float(np.exp(c)), float(-s)
        resid = ly - (c + s * lx)
        self.r2_ = float(1 - resid @ resid / np.sum((ly - ly.mean()) ** 2))
        self.residual_std_ = float(resid.std(ddof=2))
        self.n_points_ = len(lx)
        if self.n_bootstrap > 0:
            rng = np.random.default_rng(self.seed)
            parts, B = [], self.n_bootstrap
            for counts in bootstrap_count_batches(len(lx), B, rng):
                parts.append(fit_loglinear(lx, ly, counts))
                del counts  # before the next batch is drawn
                if self.progress is not None:
                    self.progress(f"bootstrap ({B})", sum(len(p[0]) for p in parts), B)
            cb, sb = (np.concatenate(p) for p in zip(*parts, strict=True))
            self.bootstrap_ = np.stack([np.exp(cb), -sb], 1)  # (B, 2): A, alpha
            self.ci_: dict[str, CI] = {
                k: percentile_ci(v, self.bootstrap_[:, i], self.confidence, len(lx))
                for i, (k, v) in enumerate((("A", self.A_), ("alpha", self.alpha_)))
            }
        return self

    def predict(self, x: Any) -> np.ndarray:
        return self.A_ * np.asarray(x, dtype=float) ** -self.alpha_


class SaturatingPowerLaw:
    """``y = E + A x^-α``, Huber loss (``delta``) on log residuals, log-sum-exp prediction.

    Starts: every ``alpha`` in ``alpha_starts`` × ``E = f · min(y)`` for ``f`` in
    ``E_fractions``, with ``log A`` from the data given the two. Fitted: ``E_, A_, alpha_``,
    ``objective_``, ``grad_norm_``, ``converged_``, ``r2_`` (log space), ``n_points_``, and
    with ``n_bootstrap > 0`` ``ci_`` (E, A, alpha) and ``bootstrap_`` (B, 3), each resample
    refit from the full-data optimum. ``max_points``, ``max_memory``, ``progress``: as for
    :class:`~fmlab.fit.ChinchillaFit` (above ``max_points`` points the starts and the
    bootstrap use a subsample, the optimum is polished on all points, the draws rescaled;
    ``subsample_`` is then the subsample's size, else None).
    """

    def __init__(
        self,
        *,
        delta: float = 1e-3,
        alpha_starts: tuple[float, ...] = (0.1, 0.3, 0.6, 1.0, 2.0),
        E_fractions: tuple[float, ...] = (1e-3, 0.5, 0.8, 0.95),
        n_bootstrap: int = 1000,
        confidence: float = 0.95,
        seed: int = 0,
        gtol: float = 1e-8,
        max_iter: int = 500,
        max_points: int | None = _large.DEFAULT_MAX_POINTS,
        max_memory: str | float | None = None,
        progress: _large.Progress | None = None,
    ):
        self.delta = delta
        self.alpha_starts = alpha_starts
        self.E_fractions = E_fractions
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.seed = seed
        self.gtol = gtol
        self.max_iter = max_iter
        self.max_points = max_points
        self.max_memory = max_memory
        self.progress = progress
        _large.validate_max_points(max_points, 16)

    def _terms(self, lx: np.ndarray, center: float) -> list[LSETerm]:
        one = np.ones_like(lx)  # params: (log A', log E, α) with log A' = log A - α·center
        return [LSETerm((0, 2), np.stack([one, -(lx - center)], 1)), LSETerm((1,), one[:, None])]

    def _starts(self, lx: np.ndarray, y: np.ndarray, center: float) -> np.ndarray:
        rows = []
        for alpha, f in itertools.product(self.alpha_starts, self.E_fractions):
            E = f * y.min()
            a = np.median(np.log(y - E) + alpha * (lx - center))
            rows.append((a, np.log(E), alpha))
        return np.array(rows)

    def _minimize(self, terms, ly, theta0, weights=None, **options):
        return minimize_huber_lse(
            terms,
            ly,
            theta0,
            weights=weights,
            delta=self.delta,
            gtol=self.gtol,
            max_iter=self.max_iter,
            **options,
        )

    def memory_estimate(self, n: int) -> int:
        """Peak bytes of :meth:`fit` on ``n`` points, about."""
        n = max(n, 1)
        m = n if self.max_points is None else min(n, self.max_points)
        S = len(self.alpha_starts) * len(self.E_fractions)
        batch = min(self.n_bootstrap, max(1, BOOT_ELEMENTS // m))
        boot = max(working_memory(m, batch, (2, 1), weight_rows=batch), count_bytes(m, batch))
        fits = max(working_memory(m, S, (2, 1)), working_memory(n, 3, (2, 1)) * (m < n))
        return 8 * 16 * (n + m * (m < n)) + max(fits, boot * (self.n_bootstrap > 0))

    def fit(self, x: Any, y: Any) -> SaturatingPowerLaw:
        arrays = check_positive_finite({"x": x, "y": y})
        lx, y = np.log(arrays["x"]), arrays["y"]
        if len(lx) < 4 or len(np.unique(lx)) < 3:
            raise ValueError("need at least 4 points and 3 distinct x for E + A x^-alpha")
        n = len(lx)
        _large.check_memory(
            f"SaturatingPowerLaw on {n:,} points", self.memory_estimate(n), self.max_memory,
            "use fewer bootstrap resamples",
        )  # fmt: skip
        center, ly = float(lx.mean()), np.log(y)
        terms = self._terms(lx, center)
        sub = _large.subsample(n, self.max_points, self.seed)
        self.subsample_ = None if sub is None else len(sub)
        if sub is None:
            res = self._minimize(terms, ly, self._starts(lx, y, center))
        else:  # starts on the subsample (same coordinates: the full data's centre), polished
            sub_terms, sub_ly = self._terms(lx[sub], center), ly[sub]
            first = self._minimize(sub_terms, sub_ly, self._starts(lx[sub], y[sub], center))
            top = np.argsort(np.where(np.isfinite(first.fun), first.fun, np.inf))[:3]
            report = _large.stage_progress(self.progress, f"polishing on all {n:,} points", 0, 1, 1)
            res = self._minimize(terms, ly, first.theta[top], coarse_gtol=None, progress=report)
        best = int(np.nanargmin(res.fun))
        a, e, alpha = res.theta[best]
        self.A_, self.E_, self.alpha_ = (
            float(np.exp(a + alpha * center)),
            float(np.exp(e)),
            float(alpha),
        )
        self.objective_ = float(res.fun[best])
        self.converged_ = bool(res.converged[best])
        theta = np.array([np.log(self.A_), e, alpha])
        raw = [LSETerm((0, 2), np.stack([np.ones_like(lx), -lx], 1)), terms[1]]
        self.grad_norm_ = float(np.abs(huber_lse_gradient(raw, ly, theta, delta=self.delta)).max())
        resid = ly - np.log(self.predict(np.exp(lx)))
        self.r2_ = float(1 - resid @ resid / np.sum((ly - ly.mean()) ** 2))
        self.n_points_ = len(lx)
        if not self.converged_:
            warnings.warn(
                f"SaturatingPowerLaw: the best start did not converge "
                f"(max |gradient| {self.grad_norm_:.2e})",
                FitWarning,
                stacklevel=2,
            )
        if self.n_bootstrap > 0 and sub is None:
            self._bootstrap(terms, ly, res.theta[best], center)
        elif self.n_bootstrap > 0:  # the subsample's resamples, around its own optimum
            self._bootstrap(sub_terms, sub_ly, first.theta[top[0]], center, full=res.theta[best])
        return self

    def _bootstrap(self, terms, ly, theta_best, center, full=None) -> None:
        """Refit resamples of ``ly`` from its optimum ``theta_best``, in batches; ``full``:
        ``ly`` is a subsample and the draws are rescaled around this full-data optimum."""
        B, parts, lo = self.n_bootstrap, [], 0
        for counts in bootstrap_count_batches(len(ly), B, np.random.default_rng(self.seed)):
            report = _large.stage_progress(self.progress, f"bootstrap ({B})", lo, len(counts), B)
            res = self._minimize(
                terms, ly, np.tile(theta_best, (len(counts), 1)), weights=counts, progress=report
            )
            parts.append((res.theta, res.converged))
            lo += len(counts)
            del counts
        theta, converged = (np.concatenate(p) for p in zip(*parts, strict=True))
        if full is not None:
            theta = _large.rescaled_draws(full, theta_best, theta, len(ly), self.n_points_)
        a, e, alpha = theta.T
        self.bootstrap_ = np.stack([np.exp(e), np.exp(a + alpha * center), alpha], 1)  # (B, 3)
        self.bootstrap_converged_ = float(converged.mean())
        self.ci_: dict[str, CI] = {
            k: percentile_ci(v, self.bootstrap_[:, i], self.confidence, self.n_points_)
            for i, (k, v) in enumerate((("E", self.E_), ("A", self.A_), ("alpha", self.alpha_)))
        }

    def predict(self, x: Any) -> np.ndarray:
        return self.E_ + self.A_ * np.asarray(x, dtype=float) ** -self.alpha_
