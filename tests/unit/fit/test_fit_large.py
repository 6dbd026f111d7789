"""Fits on many points: blocked sums, streamed bootstraps, subsamples, the memory limit.

Tolerances: a fit "reaches the same optimum" when the parameters agree to 1e-6 relative.
Both fits stop at ``max|∇| <= gtol·δ·n`` (gtol 1e-8), where the Hessian is ~n times the
feature scale, so the parameters of two converged fits differ by ~1e-10 (1e-11 measured);
1e-6 leaves room and still fails for a fit that stopped in another basin or early.
"""

import math
import tracemalloc

import numpy as np
import pytest

import fmlab.fit._newton as newton
import fmlab.fit._problem as problem
import fmlab.fit.power as power
from fmlab.fit import ChinchillaFit, PowerLaw, SaturatingPowerLaw, sample_chinchilla
from fmlab.fit._common import bootstrap_count_batches, bootstrap_counts
from fmlab.fit._large import MemoryLimitError, memory_limit, parse_bytes, subsample
from fmlab.fit.chinchilla_law import param_columns
from fmlab.fit.isoflop import _resample_weights

SMALL_GRID = {"a": (2.0, 8.0), "b": (2.0, 8.0), "e": (0.0, 1.0), "alpha": (0.2, 0.6),
              "beta": (0.2, 0.6)}  # fmt: skip
NAMES = ("E", "A", "B", "alpha", "beta")


def _terms(n, seed=0):
    df = sample_chinchilla(n, noise=0.02, seed=seed)
    x1, x2, y = np.log(df.N.to_numpy()), np.log(df.D.to_numpy()), np.log(df.loss.to_numpy())
    one = np.ones(n)
    terms = [
        newton.LSETerm((0, 3), np.stack([one, -(x1 - x1.mean())], 1)),
        newton.LSETerm((1, 4), np.stack([one, -(x2 - x2.mean())], 1)),
        newton.LSETerm((2,), one[:, None]),
    ]
    return terms, y


def test_points_in_blocks_give_the_sums_of_one_block(monkeypatch):
    terms, y = _terms(3000)
    theta = np.array([[6.0, 6.0, 0.5, 0.34, 0.28], [5.0, 7.0, 0.4, 0.3, 0.3]])
    w = np.random.default_rng(0).integers(0, 3, (5, 3000)).astype(float)
    idx = np.array([1, 4])
    whole = problem._Problem(terms, y, 1e-3, rows=2, dtype=np.float64)
    monkeypatch.setattr(problem, "_BLOCK_ELEMENTS", 2 * 700)  # blocks of 700 points
    blocked = problem._Problem(terms, y, 1e-3, rows=2, dtype=np.float64)
    assert len(whole.blocks) == 1 and len(blocked.blocks) == 5
    pairs = zip(whole.derivatives(theta, w, idx), blocked.derivatives(theta, w, idx), strict=True)
    for a, b in pairs:
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-300)  # summation order only
    starts = np.tile([6.0, 6.0, 0.5, 0.3, 0.3], (3, 1))
    res = newton.minimize_huber_lse(terms, y, starts)
    monkeypatch.undo()
    ref = newton.minimize_huber_lse(terms, y, starts)
    assert res.converged.all()
    np.testing.assert_allclose(res.theta, ref.theta, rtol=1e-6)


def test_work_buffers_are_bounded_whatever_the_number_of_points():
    terms, y = _terms(50_000)
    prob = problem._Problem(terms, y, 1e-3, rows=512, dtype=np.float64)
    # 9 buffers of at most 2^21 (problem, point) pairs: 151 MB, where one block would be 1.8 GB
    assert prob._buf.size <= 9 * problem._BLOCK_ELEMENTS and len(prob.blocks) == 13


def test_bootstrap_batches_draw_the_same_counts():
    whole = bootstrap_counts(97, 33, np.random.default_rng(5))
    batches = list(bootstrap_count_batches(97, 33, np.random.default_rng(5), max_elements=97 * 4))
    assert [len(b) for b in batches] == [4] * 8 + [1]
    assert np.array_equal(np.concatenate(batches), whole)
    rng, multi = np.random.default_rng(2), np.random.default_rng(2)
    for n in (40, 5000):  # isoflop: multinomial draws for small budgets, counts for large
        got = np.concatenate(list(_resample_weights(rng, n, 9)))
        assert got.shape == (9, n) and (got.sum(1) == n).all()
        if n == 40:
            assert np.array_equal(got, multi.multinomial(n, np.full(n, 1 / n), size=9))


def test_power_law_bootstrap_in_batches_is_the_bootstrap_at_once(monkeypatch):
    rng = np.random.default_rng(1)
    x = np.exp(rng.uniform(10, 20, 500))
    y = 30 * x**-0.2 * np.exp(0.01 * rng.standard_normal(500))
    whole = PowerLaw(n_bootstrap=300).fit(x, y).bootstrap_
    monkeypatch.setattr(power, "bootstrap_count_batches",
                        lambda n, B, r: bootstrap_count_batches(n, B, r, 500 * 7))  # fmt: skip
    batched = PowerLaw(n_bootstrap=300).fit(x, y).bootstrap_
    np.testing.assert_allclose(batched, whole, rtol=1e-12)  # same draws; matmul rounding only


@pytest.fixture(scope="module")
def many():
    return sample_chinchilla(2000, noise=0.02, seed=11)


def test_subsampled_chinchilla_fit_reaches_the_full_data_optimum(many):
    sub = ChinchillaFit(grid=SMALL_GRID, n_bootstrap=0, max_points=300)
    sub.fit(many.N, many.D, many.loss)
    full = ChinchillaFit(grid=SMALL_GRID, n_bootstrap=0, max_points=None)
    full.fit(many.N, many.D, many.loss)
    assert sub.subsample_ == 300 and full.subsample_ is None and sub.n_points_ == 2000
    assert sub.converged_ and sub.grad_norm_ <= 1e-8 * 1e-3 * 2000
    np.testing.assert_allclose(sub.theta_, full.theta_, rtol=1e-6)
    assert sub.objective_ == pytest.approx(full.objective_, rel=1e-10)
    assert sub.summary()["subsample"] == 300 and "subsample" not in full.summary()


def test_subsampled_bootstrap_is_the_documented_rescaling(many):
    """Draws = full-data optimum + sqrt(m/n) · (subsample resample optima - subsample optimum),
    the subsample being default_rng([seed, 7919]).choice(n, m, replace=False), sorted."""
    m, n = 500, len(many)
    fit = ChinchillaFit(grid=SMALL_GRID, n_bootstrap=200, max_points=m, seed=3)
    fit.fit(many.N, many.D, many.loss)
    rows = np.sort(np.random.default_rng([3, 7919]).choice(n, m, replace=False))
    assert np.array_equal(subsample(n, m, 3), rows)
    part = many.iloc[rows]
    alone = ChinchillaFit(grid=SMALL_GRID, n_bootstrap=200, max_points=None, seed=3)
    alone.fit(part.N, part.D, part.loss)
    raw = alone.bootstrap_[list(NAMES)].to_numpy()
    theta = np.column_stack([np.log(raw[:, 1]), np.log(raw[:, 2]), np.log(raw[:, 0]), raw[:, 3:]])
    expected = param_columns(fit.theta_ + math.sqrt(m / n) * (theta - alone.theta_))
    for k in NAMES:
        np.testing.assert_allclose(fit.bootstrap_[k], expected[k], rtol=1e-9)
    # the rescaled intervals have about the width of the bootstrap on every point: over seeds
    # 0-4 the ratios for E, alpha and beta were 0.70-1.38 (200 resamples and a 500-point
    # subsample leave each width uncertain by ~15-25 %)
    every = ChinchillaFit(grid=SMALL_GRID, n_bootstrap=200, max_points=None, seed=3)
    every.fit(many.N, many.D, many.loss)
    for k in ("E", "alpha", "beta"):
        width = fit.ci_[k].high - fit.ci_[k].low
        assert 0.6 < width / (every.ci_[k].high - every.ci_[k].low) < 1.6, k
        assert fit.ci_[k].contains(getattr(fit, f"{k}_"))


def test_subsampled_saturating_power_law_reaches_the_full_data_optimum():
    rng = np.random.default_rng(4)
    x = np.exp(rng.uniform(np.log(1e6), np.log(1e10), 3000))
    y = (1.7 + 400.0 * x**-0.3) * np.exp(0.02 * rng.standard_normal(3000))
    sub = SaturatingPowerLaw(n_bootstrap=100, max_points=300).fit(x, y)
    full = SaturatingPowerLaw(n_bootstrap=0, max_points=None).fit(x, y)
    assert sub.subsample_ == 300 and sub.converged_
    for k in ("E", "A", "alpha"):
        assert getattr(sub, f"{k}_") == pytest.approx(getattr(full, f"{k}_"), rel=1e-6)
    assert sub.ci_["alpha"].contains(sub.alpha_) and sub.bootstrap_.shape == (100, 3)


def test_peak_memory_of_a_100k_point_fit_is_bounded():
    """10^5 points: the fit's numpy arrays peak below 100 MB (measured 45 MB; 35 MB at 10^4
    and 450 MB at 10^6 points: linear, ~450 B a point) and below the fit's own estimate
    (72 MB). Before blocking, subsampling and streaming, the work buffers alone were
    9 × 512 × 10^5 × 8 B = 3.7 GB, and the bootstrap weights 0.8 GB per copy."""
    df = sample_chinchilla(100_000, noise=0.02, seed=0)
    N, D, loss = (df[c].to_numpy() for c in ("N", "D", "loss"))
    fit = ChinchillaFit(grid=SMALL_GRID, n_bootstrap=200, max_points=2000)
    tracemalloc.start()
    try:
        fit.fit(N, D, loss)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fit.converged_ and fit.subsample_ == 2000
    assert peak < 100 * 2**20, peak / 2**20
    assert peak < fit.memory_estimate(100_000)


def test_over_the_memory_limit_the_fit_refuses_naming_limit_and_override(many, monkeypatch):
    fit = ChinchillaFit(grid=SMALL_GRID, n_bootstrap=10, max_memory="1MiB")
    with pytest.raises(MemoryLimitError) as info:
        fit.fit(many.N, many.D, many.loss)
    text = str(info.value)
    assert "over the limit of 1 MiB" in text and "ChinchillaFit on 2,000 points" in text
    assert "max_memory=" in text and "FMLAB_FIT_MAX_MEMORY" in text and "\n" not in text
    assert info.value.limit == 2**20 and info.value.need > 2**20
    monkeypatch.setenv("FMLAB_FIT_MAX_MEMORY", "2MB")
    assert memory_limit() == 2_000_000
    with pytest.raises(MemoryLimitError, match=r"over the limit of 1\.91 MiB"):
        PowerLaw(n_bootstrap=500).fit(np.arange(1.0, 3001.0), np.arange(3000.0, 0.0, -1))
    assert memory_limit("3GiB") == 3 * 2**30 and parse_bytes(2e9) == 2 * 10**9


@pytest.mark.parametrize("bad", ["lots", "-1GB", "0", "5 parsecs"])
def test_bad_memory_limits_are_named(bad):
    with pytest.raises(ValueError, match="memory"):
        memory_limit(bad)


def test_figures_show_a_sample_of_many_runs(monkeypatch):
    import fmlab.fit.figures as figures
    from fmlab.report.figures import close

    monkeypatch.setattr(figures, "MAX_PLOTTED", 50)
    df = sample_chinchilla(400, seed=2)
    fit = ChinchillaFit(grid=SMALL_GRID, n_bootstrap=0).fit(df.N, df.D, df.loss)
    figs = figures.chinchilla_figures(fit.params_, df.N, df.D, df.loss)
    ax = figs["fit"].axes[0]
    shown = sum(len(c.get_offsets()) for c in ax.collections)
    assert shown == 50 and any("50 of 400 runs shown" in t.get_text() for t in ax.texts)
    for fig in figs.values():
        close(fig)
