import numpy as np
import pytest
from scipy import stats as sps

from fmlab.stats import CI, bootstrap_ci, paired_bootstrap


def _diff(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _scipy(data, statistic, method, n, seed, paired=False):
    res = sps.bootstrap(
        data,
        statistic,
        method="BCa" if method == "bca" else method,
        n_resamples=n,
        paired=paired,
        rng=np.random.default_rng(seed),
    )
    return res.confidence_interval


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_one_sample_matches_scipy_on_the_same_resamples(method):
    x = np.random.default_rng(1).exponential(size=40)  # skewed: BCa differs from percentile
    ci = bootstrap_ci(x, np.mean, method=method, n_resamples=4000, seed=7)
    ref = _scipy((x,), np.mean, method, 4000, 7)
    assert ci.low == pytest.approx(ref.low, rel=1e-12)
    assert ci.high == pytest.approx(ref.high, rel=1e-12)
    assert ci.estimate == pytest.approx(x.mean())
    assert (ci.method, ci.n, ci.confidence) == (method, 40, 0.95)


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_two_samples_match_scipy(method, paired):
    rng = np.random.default_rng(2)
    a = rng.exponential(size=25)
    b = a + rng.normal(0.3, 0.5, size=25) if paired else rng.exponential(size=31)
    ci = bootstrap_ci((a, b), _diff, method=method, n_resamples=3000, seed=3, paired=paired)
    ref = _scipy((a, b), _diff, method, 3000, 3, paired=paired)
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), rel=1e-12)


def test_unvectorized_statistic_falls_back_to_a_loop_with_the_same_result():
    x = np.random.default_rng(4).normal(size=30)
    fast = bootstrap_ci(x, np.median, n_resamples=500, seed=1)
    slow = bootstrap_ci(x, lambda v: float(np.median(v)), n_resamples=500, seed=1)
    assert (slow.low, slow.high) == pytest.approx((fast.low, fast.high))


def test_normal_mean_coverage_is_near_nominal():
    # 300 seeded samples of n=30 from N(1, 2): the 95% BCa interval should cover the mean
    # about 95% of the time (binomial sd 1.3%; BCa is slightly liberal at n=30)
    rng = np.random.default_rng(5)
    hits = [
        bootstrap_ci(rng.normal(1.0, 2.0, 30), n_resamples=1000, seed=i).contains(1.0)
        for i in range(300)
    ]
    assert 0.89 <= np.mean(hits) <= 0.99


def test_paired_bootstrap_is_the_ci_of_the_difference_and_tighter_than_unpaired():
    rng = np.random.default_rng(6)
    item = rng.normal(0, 1, 200)  # shared item difficulty
    a, b = item + rng.normal(0.1, 0.2, 200), item + rng.normal(0.0, 0.2, 200)
    paired = paired_bootstrap(a, b, n_resamples=2000, seed=0)
    same = bootstrap_ci(a - b, n_resamples=2000, seed=0)  # mean of differences, same draws
    assert (paired.low, paired.high) == pytest.approx((same.low, same.high))
    unpaired = bootstrap_ci((a, b), _diff, n_resamples=2000, seed=0)
    assert paired.width < 0.3 * unpaired.width
    assert paired.contains(0.1)


def test_paired_bootstrap_with_median():
    rng = np.random.default_rng(7)
    a = rng.normal(0.5, 1, 80)
    ci = paired_bootstrap(a, a - 0.5, statistic=np.median, n_resamples=300)
    assert ci.estimate == pytest.approx(0.5)
    assert ci.low == pytest.approx(0.5) and ci.high == pytest.approx(0.5)


def test_all_equal_values_give_a_zero_width_interval():
    ci = bootstrap_ci(np.full(10, 0.7))
    assert ci.low == ci.high == ci.estimate == pytest.approx(0.7)


@pytest.mark.parametrize("bad", [[1.0], [], [1.0, np.nan, 2.0]])
def test_degenerate_or_invalid_input_raises(bad):
    with pytest.raises(ValueError):
        bootstrap_ci(bad)


def test_paired_needs_equal_lengths_and_method_is_checked():
    with pytest.raises(ValueError, match="equal lengths"):
        bootstrap_ci(([1.0, 2.0, 3.0], [1.0, 2.0]), _diff, paired=True)
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci([1.0, 2.0, 3.0], method="basic")


def test_large_samples_are_resampled_in_batches():
    x = np.random.default_rng(8).normal(size=20_000)
    ci = bootstrap_ci(x, n_resamples=400, method="percentile", seed=0)  # 8e6 values: 2 batches
    assert ci.low < x.mean() < ci.high
    assert ci.width == pytest.approx(2 * 1.96 / np.sqrt(len(x)), rel=0.2)


def test_ci_str_and_helpers():
    ci = CI(0.912, 0.874, 0.941, 0.95, "bca", 100)
    assert str(ci) == "0.912 [0.874, 0.941]"
    assert str(CI(482.0, 285.2, 722.9, 0.95, "percentile", 240)) == "482 [285, 723]"
    assert ci.contains(0.9) and not ci.contains(0.95)
    assert ci.width == pytest.approx(0.067)
