"""Do approaches 2 and 3 of Hoffmann et al. 2022 agree? A paired bootstrap of ``a3 − a2``.

Hoffmann et al. (Table 2) report the compute-optimal exponent ``a`` (``N_opt ∝ C^a``) of
each approach with its own bootstrap interval (10th-90th percentiles), and call the
approaches in agreement when those intervals sit together, all near 0.5 and far from Kaplan
et al.'s 0.73. Subtracting two point estimates ignores that each is uncertain, and comparing
two marginal intervals ignores that both approaches are fit to the *same* runs, so their
errors are correlated. :class:`ApproachGap` makes each bootstrap draw one data set and refits
*both* approaches on it, so every draw of ``a3 − a2`` carries the correlation; the percentile
interval of those draws is the interval of the difference. Two ways to draw a data set:

* ``resample="runs"``: the runs, with replacement within each FLOP budget (the budgets are
  the design, as in :class:`IsoFlopFit`'s own bootstrap). Needs no replicates, but it also
  resamples the *sizes* of each budget: with 3-5 sizes a draw often loses an end of the
  profile and its parabola swings.
* ``resample="seeds"``: the design stays; each run is its (N, D) point's mean over seeds
  plus a seed-to-seed deviation drawn from all points' pooled deviations (a residual
  bootstrap that needs no law, only replicates). The draws are moved by the estimate minus
  the estimate on the point means.

On synthetic IsoFLOP grids of the ``scaling`` study's shape (5 sizes × 2 seeds per budget,
4 budgets, 1 % noise) the core of the draws (half the 16-84 % range) was 1.11× ("seeds")
and 1.39× ("runs") the spread of the estimate over independent data sets; approach 2's
vertex is a ratio of noisy coefficients, so both have long tails and conservative 95 %
intervals (docs/scaling.md).

Refits: approach 3 from the full-data optimum (a warm start, as :class:`ChinchillaFit`'s
own bootstrap does); approach 2 exactly (weighted parabolas per budget, then a line through
``log N_opt`` against ``log C``) on the budgets the full-data IsoFLOP fit used. A draw in
which some budget's parabola is not convex, or has fewer than three distinct sizes, has no
approach-2 exponent and is dropped; ``failed_`` says how often.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from fmlab.fit._chinchilla_parts import Model
from fmlab.fit._common import BOOT_ELEMENTS, percentile_ci
from fmlab.fit.chinchilla import ChinchillaFit
from fmlab.fit.isoflop import IsoFlopFit, _loglinear_rows, _parabola_vertex
from fmlab.fit.validation import check_positive_finite
from fmlab.stats import CI

__all__ = ["ApproachGap", "seed_noise_draws", "stratified_counts"]


def stratified_counts(strata: np.ndarray, n_resamples: int, rng: np.random.Generator):
    """Bootstrap multiplicities ``(B, n)``: each stratum's rows resampled within it.

    Every resample keeps each stratum's size (the design); within a stratum of ``m`` rows
    the counts are Multinomial(m, uniform).
    """
    strata = np.asarray(strata)
    counts = np.zeros((n_resamples, len(strata)))
    for s in np.unique(strata):  # sorted: the draws are consumed in a fixed order
        idx = np.flatnonzero(strata == s)
        counts[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1 / len(idx)), n_resamples)
    return counts


class ApproachGap:
    """Paired, budget-stratified bootstrap of ``a`` by approach 3 minus ``a`` by approach 2.

    ``fit(N, D, loss, C, law=..., iso=...)`` takes one row per run (parameters, tokens,
    final loss, nominal FLOP budget) and the two fits already made on those rows: ``law``
    a :class:`ChinchillaFit` on every row (no ``exclude_top_loss``, no subsample), ``iso``
    an :class:`IsoFlopFit` on the rows of the budgets in ``iso.optima_`` (the others are
    resampled but do not enter approach 2).

    Fitted: ``estimate_`` (``law.a_ − iso.a_``), ``ci_`` (:class:`~fmlab.stats.CI` of the
    difference), ``ci_a3_``, ``ci_a2_`` (the same draws' marginal intervals),
    ``draws_`` (B, 3: a3, a2, and the difference moved to the estimate; NaN where a refit
    failed), ``center_`` (the difference in the bootstrap world: the estimate for "runs",
    the estimate on the point means for "seeds"), ``failed_`` (share of draws without a
    difference), ``a3_converged_`` (share of approach-3 refits that converged),
    ``correlation_`` (of the a3 and a2 draws), and for checking ``counts_`` (B, n: the
    runs' multiplicities, "runs") or ``log_loss_draws_`` (B, n: the data sets, "seeds").
    """

    def __init__(
        self,
        *,
        n_bootstrap: int = 1000,
        resample: Literal["runs", "seeds"] = "runs",
        confidence: float = 0.95,
        seed: int = 0,
    ):
        if n_bootstrap < 2:
            raise ValueError(f"n_bootstrap must be >= 2, got {n_bootstrap}")
        if resample not in ("runs", "seeds"):
            raise ValueError(f"resample must be 'runs' or 'seeds', got {resample!r}")
        self.n_bootstrap = n_bootstrap
        self.resample = resample
        self.confidence = confidence
        self.seed = seed

    def fit(self, N: Any, D: Any, loss: Any, C: Any, *, law: ChinchillaFit, iso: IsoFlopFit):
        arrays = check_positive_finite({"N": N, "D": D, "loss": loss, "C": C})
        N, D, loss, budget = arrays["N"], arrays["D"], arrays["loss"], arrays["C"]
        if len(law.excluded_) or law.subsample_ is not None or law.n_points_ != len(N):
            raise ValueError("law must be a ChinchillaFit on exactly these rows, none excluded")
        rng = np.random.default_rng(self.seed)
        self.estimate_ = float(law.a_ - iso.a_)
        if self.resample == "runs":
            self.counts_ = stratified_counts(budget, self.n_bootstrap, rng)
            a3, conv = self._approach3(law, N, D, np.log(loss), self.counts_)
            a2 = _approach2(iso, N, budget, loss, self.counts_)
            self.center_ = self.estimate_
        else:
            ybar, self.log_loss_draws_ = seed_noise_draws(N, D, np.log(loss), self.n_bootstrap, rng)
            a3, conv = self._approach3(law, N, D, self.log_loss_draws_)
            a2 = _approach2(iso, N, budget, np.exp(self.log_loss_draws_))
            # the bootstrap world's truth is the point means: the draws are moved by the
            # (small) difference between the estimate there and here
            a3c, _ = self._approach3(law, N, D, ybar[None, :])
            self.center_ = float(a3c[0] - _approach2(iso, N, budget, np.exp(ybar)[None, :])[0])
        diff = a3 - a2 + (self.estimate_ - self.center_)
        self.draws_ = np.stack([a3, a2, diff], 1)
        self.failed_ = float(np.mean(~np.isfinite(diff)))
        self.a3_converged_ = float(np.mean(conv))
        ok = np.isfinite(diff)
        self.correlation_ = float(np.corrcoef(a3[ok], a2[ok])[0, 1]) if ok.sum() > 2 else np.nan
        n = len(N)
        self.ci_: CI = percentile_ci(self.estimate_, diff, self.confidence, n)
        self.ci_a3_: CI = percentile_ci(law.a_, a3, self.confidence, n)
        self.ci_a2_: CI = percentile_ci(iso.a_, a2, self.confidence, n)
        return self

    def _approach3(self, law: ChinchillaFit, N, D, y, weights=None):
        """Warm-started refits of the Chinchilla law: ``y`` (n,) with ``weights`` (B, n)
        (resampled runs, in batches), or ``y`` (B, n) one data set per row (unit weights)."""
        model, a, conv = Model(N, D), [], []
        start = law.theta_[None, :]
        if weights is not None:
            batch = max(1, BOOT_ELEMENTS // len(y))
            for lo in range(0, len(weights), batch):
                w = weights[lo : lo + batch]
                theta, res = law._minimize(  # the fit's own solver settings and trust radius
                    model, y, np.tile(start, (len(w), 1)), weights=w, radius=law._radius
                )
                a.append(theta[:, 4] / (theta[:, 3] + theta[:, 4]))  # a = β / (α + β)
                conv.append(res.converged)
        else:
            for row in y:  # the solver shares y across problems: one data set per call
                theta, res = law._minimize(model, row, start, radius=law._radius)
                a.append(theta[:, 4] / (theta[:, 3] + theta[:, 4]))
                conv.append(res.converged)
        return np.concatenate(a), np.concatenate(conv)


def seed_noise_draws(N, D, y, n_resamples: int, rng: np.random.Generator):
    """Data sets ``(B, n)`` on the same design: each run's point mean plus a deviation
    drawn from the pooled seed-to-seed deviations of all points.

    A point is one (N, D); its runs differ only by seed. Deviations from the point mean
    are scaled by ``sqrt(m / (m - 1))`` (m runs at the point), so that each has the variance
    of one run's noise. Returns the point means per run ``(n,)`` and the draws.
    """
    _, point = np.unique(np.stack([N, D], 1), axis=0, return_inverse=True)
    point = point.ravel()
    m = np.bincount(point)
    if m.max() < 2:
        raise ValueError("resample='seeds' needs runs repeated over seeds at some (N, D)")
    ybar = (np.bincount(point, weights=y) / m)[point]
    rep = m[point] >= 2
    devs = ((y - ybar) * np.sqrt(m[point] / np.maximum(m[point] - 1, 1)))[rep]
    return ybar, ybar + devs[rng.integers(0, len(devs), size=(n_resamples, len(y)))]


def _approach2(iso: IsoFlopFit, N, budget, loss, weights=None) -> np.ndarray:
    """Approach 2 on the budgets ``iso`` used: weighted parabola vertices per budget,
    then the slope of log N_opt on log C, for each row of ``weights`` (B, n) on ``loss``
    (n,), or for each row of ``loss`` (B, n) with unit weights. NaN: some budget failed."""
    budgets = iso.optima_["C"].to_numpy()
    log_nopt = []
    for c in budgets:
        idx = np.flatnonzero(budget == c)
        if len(idx) == 0:
            raise ValueError(f"budget {c:g} of the IsoFLOP fit has no rows here")
        x = np.log(N[idx])
        v = x - x.mean()
        if weights is not None:
            vertex = _parabola_vertex(v, loss[idx], weights[:, idx])[0]
        else:  # one least-squares solve for every data set: the design is the same
            X = np.stack([np.ones_like(v), v, v * v], 1)  # (m, 3)
            coef = np.linalg.lstsq(X, loss[:, idx].T, rcond=None)[0]  # (3, B)
            with np.errstate(divide="ignore", invalid="ignore"):
                vertex = np.where(coef[2] > 0, -coef[1] / (2 * coef[2]), np.nan)
        log_nopt.append(vertex + x.mean())
    return _loglinear_rows(np.log(budgets), np.stack(log_nopt, 1))
