"""The paired bootstrap of a(approach 3) − a(approach 2), checked against computations
that share no code with it: scipy's least squares for the Chinchilla law and numpy's
polyfit for the IsoFLOP parabolas, on the resampled runs written out as repeated rows."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import least_squares

from fmlab.fit import HOFFMANN_PARAMS, ApproachGap, ChinchillaFit, IsoFlopFit
from fmlab.fit.approaches import seed_noise_draws, stratified_counts

LAW = HOFFMANN_PARAMS
GRID = {"a": (4.0, 7.0), "b": (4.0, 7.0), "e": (0.0, 1.0), "alpha": (0.2, 0.5),
        "beta": (0.2, 0.5)}  # fmt: skip


def _runs(noise, seed=0, sizes=5, budgets=(1e18, 1e19, 1e20, 1e21), repeats=2):
    """IsoFLOP-shaped runs around each budget's true optimum, log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for C in budgets:
        n_opt, _ = LAW.compute_optimal(C)
        for N in n_opt * np.geomspace(1 / 4, 4, sizes):
            for _ in range(repeats):
                D = C / (6 * N)
                rows.append((N, D, C, LAW.predict(N, D) * np.exp(noise * rng.standard_normal())))
    return pd.DataFrame(rows, columns=["N", "D", "C", "loss"])


def _fits(df, n_bootstrap=40, seed=3, resample="runs"):
    law = ChinchillaFit(grid=GRID, n_bootstrap=0).fit(df.N, df.D, df.loss)
    iso = IsoFlopFit(n_bootstrap=0).fit(df.N, df.loss, df.C)
    gap = ApproachGap(n_bootstrap=n_bootstrap, seed=seed, resample=resample)
    return law, iso, gap.fit(df.N, df.D, df.loss, df.C, law=law, iso=iso)


def _a3_by_least_squares(df, counts, y=None):
    """Weighted least squares of log L on the law's log-sum-exp (= Huber with every
    residual below δ), from the true parameters."""
    x1, x2, w = np.log(df.N), np.log(df.D), np.sqrt(counts)
    y = np.log(df.loss) if y is None else y

    def residuals(t):
        pred = np.logaddexp(np.logaddexp(t[0] - t[3] * x1, t[1] - t[4] * x2), t[2])
        return w * (pred - y)

    res = least_squares(residuals, LAW.theta, xtol=1e-15, ftol=1e-15, gtol=1e-15)
    r = residuals(res.x)[counts > 0] / w[counts > 0]
    assert np.abs(r).max() < 1e-3  # inside Huber's quadratic zone: the same objective
    return res.x[4] / (res.x[3] + res.x[4])


def _a2_by_polyfit(df, counts, loss=None):
    loss = df.loss.to_numpy() if loss is None else loss
    log_c, log_nopt = [], []
    for c, g in df.groupby("C"):
        w = counts[g.index]
        keep = w > 0
        c2, c1, _ = np.polyfit(np.log(g.N[keep]), loss[g.index][keep], 2, w=np.sqrt(w[keep]))
        log_c.append(np.log(c))
        log_nopt.append(-c1 / (2 * c2))
    return np.polyfit(log_c, log_nopt, 1)[0]


def test_each_draw_is_both_approaches_refit_on_one_resample():
    df = _runs(noise=2e-4)
    law, iso, gap = _fits(df)
    assert gap.failed_ == 0 and gap.a3_converged_ == 1
    for i in range(4):
        counts = gap.counts_[i]
        a3, a2 = _a3_by_least_squares(df, counts), _a2_by_polyfit(df, counts)
        assert gap.draws_[i, 0] == pytest.approx(a3, abs=1e-7)
        assert gap.draws_[i, 1] == pytest.approx(a2, abs=1e-9)
        assert gap.draws_[i, 2] == pytest.approx(a3 - a2, abs=1e-7)
    assert gap.estimate_ == pytest.approx(law.a_ - iso.a_)
    assert gap.ci_.low <= gap.ci_.high and gap.ci_.confidence == 0.95


def test_seed_draws_are_both_approaches_refit_on_one_data_set():
    df = _runs(noise=2e-4)
    _, _, gap = _fits(df, resample="seeds")
    assert gap.failed_ == 0 and gap.a3_converged_ == 1
    ones = np.ones(len(df))
    # the bootstrap world's truth: both approaches on the point means
    ybar = np.log(df.loss).groupby([df.N, df.D]).transform("mean").to_numpy()
    center = _a3_by_least_squares(df, ones, ybar) - _a2_by_polyfit(df, ones, np.exp(ybar))
    assert gap.center_ == pytest.approx(center, abs=1e-7)
    for i in range(4):
        y = gap.log_loss_draws_[i]
        a3, a2 = _a3_by_least_squares(df, ones, y), _a2_by_polyfit(df, ones, np.exp(y))
        assert gap.draws_[i, :2] == pytest.approx([a3, a2], abs=1e-7)
        assert gap.draws_[i, 2] == pytest.approx(a3 - a2 + gap.estimate_ - center, abs=1e-7)


def test_seed_noise_draws_keep_the_design_and_the_seed_variance():
    N = np.array([1.0, 1, 2, 2, 3, 3, 3])
    D = np.array([5.0, 5, 5, 5, 7, 7, 7])
    y = np.array([0.10, 0.14, 0.30, 0.20, 0.50, 0.56, 0.53])
    ybar, draws = seed_noise_draws(N, D, y, 20_000, np.random.default_rng(1))
    assert ybar == pytest.approx([0.12, 0.12, 0.25, 0.25, 0.53, 0.53, 0.53])
    # deviations scaled by m / (m - 1) in variance, each then an unbiased estimate of one
    # run's noise variance; a draw picks one of the 7 uniformly
    pooled = (2 * 2 * 0.02**2 + 2 * 2 * 0.05**2 + 1.5 * 2 * 0.03**2) / 7
    assert np.var(draws - ybar) == pytest.approx(pooled, rel=0.03)
    assert np.mean(draws - ybar) == pytest.approx(0, abs=2e-3)
    with pytest.raises(ValueError, match="repeated over seeds"):
        seed_noise_draws(N[[0, 2, 4]], D[[0, 2, 4]], y[[0, 2, 4]], 10, np.random.default_rng(0))


def test_resamples_keep_every_budget_whole():
    strata = np.array([3, 1, 3, 2, 1, 3, 2, 2, 2])
    counts = stratified_counts(strata, 500, np.random.default_rng(0))
    for s in (1, 2, 3):
        assert np.all(counts[:, strata == s].sum(1) == (strata == s).sum())
    # within a stratum the draws are uniform: each row is drawn once on average
    assert counts.mean(0) == pytest.approx(np.ones(9), abs=0.12)
    again = stratified_counts(strata, 500, np.random.default_rng(0))
    assert np.array_equal(counts, again)


def test_pairing_narrows_the_interval_of_the_difference():
    """Both approaches read the same runs, so their errors move together: the paired
    interval of a3 − a2 is narrower than the two marginal spreads combined."""
    df = _runs(noise=0.003, seed=5)
    _, _, gap = _fits(df, n_bootstrap=300)
    a3, a2, diff = gap.draws_.T
    assert gap.correlation_ > 0.2
    assert np.std(diff) < np.sqrt(np.var(a3) + np.var(a2))
    # the law is the same for both approaches: the difference is consistent with 0
    assert gap.ci_.contains(0.0), gap.ci_


def test_failed_draws_are_counted_not_hidden():
    # three sizes per budget: a resample that draws fewer than three distinct sizes has no
    # parabola, so no approach-2 exponent in that draw
    df = _runs(noise=1e-3, sizes=3, repeats=2)
    _, _, gap = _fits(df, n_bootstrap=100)
    assert 0 < gap.failed_ < 1
    assert np.isnan(gap.draws_[:, 1]).mean() == pytest.approx(gap.failed_)
    assert np.isfinite(gap.ci_.low) and np.isfinite(gap.ci_.high)


def test_law_fit_on_other_rows_is_refused():
    df = _runs(noise=1e-3)
    law = ChinchillaFit(grid=GRID, n_bootstrap=0, exclude_top_loss=2).fit(df.N, df.D, df.loss)
    iso = IsoFlopFit(n_bootstrap=0).fit(df.N, df.loss, df.C)
    with pytest.raises(ValueError, match="exactly these rows"):
        ApproachGap(n_bootstrap=10).fit(df.N, df.D, df.loss, df.C, law=law, iso=iso)


@pytest.mark.slow
def test_seed_bootstrap_spread_matches_the_spread_over_data_sets():
    """The interval is only as good as its spread: over independent data sets from one law
    (4 budgets × 5 sizes × 2 seeds, 1 % noise) the estimated difference has some SD; the
    seed bootstrap's spread (half the 16-84 % range: its tails are long) should be of that
    size, and resampling the runs, which also resamples each profile's sizes, spreads more
    (measured: 1.11× and 1.39× the SD over these 10 data sets)."""
    est, boot = [], {"seeds": [], "runs": []}
    for s in range(10):
        df = _runs(noise=0.01, seed=100 + s)
        law, iso, _ = _fits(df, n_bootstrap=2)
        est.append(law.a_ - iso.a_)
        for method, spreads in boot.items():
            gap = ApproachGap(n_bootstrap=100, resample=method, seed=s)
            gap.fit(df.N, df.D, df.loss, df.C, law=law, iso=iso)
            spreads.append(np.subtract(*np.nanpercentile(gap.draws_[:, 2], [84, 16])) / 2)
    truth = np.std(est, ddof=1)
    assert 0.7 < np.median(boot["seeds"]) / truth < 1.5
    assert np.median(boot["runs"]) > np.median(boot["seeds"])
