import numpy as np
import pytest
from scipy import stats as sps

from fmlab.stats import holm_bonferroni, mcnemar, permutation_test


def _scipy_paired(a, b, alternative, n_resamples=10_000):
    return sps.permutation_test(
        (a, b),
        lambda x, y, axis=-1: np.mean(x - y, axis=axis),
        permutation_type="samples",
        alternative=alternative,
        n_resamples=n_resamples,
        rng=np.random.default_rng(0),
    ).pvalue


def _scipy_independent(a, b, alternative, n_resamples=10_000):
    return sps.permutation_test(
        (a, b),
        lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        alternative=alternative,
        n_resamples=n_resamples,
        rng=np.random.default_rng(0),
    ).pvalue


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_paired_exact_matches_scipy(alternative):
    rng = np.random.default_rng(1)
    a = rng.normal(0.3, 1, 12)
    b = a + rng.normal(-0.4, 0.5, 12)  # 2^12 = 4096 sign patterns: exact
    res = permutation_test(a, b, alternative=alternative)
    assert res.exact and res.n_resamples == 4096
    assert res.pvalue == pytest.approx(_scipy_paired(a, b, alternative), rel=1e-12)
    assert res.statistic == pytest.approx(np.mean(a - b))


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_independent_exact_matches_scipy(alternative):
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.8, 1, 7), rng.normal(0, 1, 8)  # C(15, 7) = 6435 splits: exact
    res = permutation_test(a, b, paired=False, alternative=alternative)
    assert res.exact
    assert res.pvalue == pytest.approx(_scipy_independent(a, b, alternative), rel=1e-12)


def test_random_null_agrees_with_scipy_within_monte_carlo_error():
    rng = np.random.default_rng(3)
    a = rng.normal(0.2, 1, 40)
    b = a + rng.normal(-0.15, 0.6, 40)
    ours = permutation_test(a, b, n_resamples=20_000, seed=4)
    assert not ours.exact
    ref = _scipy_paired(a, b, "two-sided", n_resamples=20_000)
    assert ours.pvalue == pytest.approx(ref, abs=0.02)  # MC sd of p ≈ 0.004
    x, y = rng.normal(0.5, 1, 30), rng.normal(0, 1, 35)
    ours = permutation_test(x, y, paired=False, n_resamples=20_000, seed=5)
    ref = _scipy_independent(x, y, "two-sided", n_resamples=20_000)
    assert ours.pvalue == pytest.approx(ref, abs=0.02)


def test_permutation_test_validates_input():
    with pytest.raises(ValueError, match="equal lengths"):
        permutation_test([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="alternative"):
        permutation_test([1.0, 2.0], [1.0, 2.0], alternative="bigger")


def _outcomes(both, only_a, only_b, neither):
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return np.array(a, dtype=bool), np.array(b, dtype=bool)


@pytest.mark.parametrize("counts", [(50, 9, 2, 30), (10, 3, 3, 5), (5, 0, 7, 1)])
def test_exact_mcnemar_is_the_binomial_test_on_discordant_pairs(counts):
    a, b = _outcomes(*counts)
    res = mcnemar(a, b, exact=True)
    ref = sps.binomtest(counts[1], counts[1] + counts[2], 0.5).pvalue
    assert res.pvalue == pytest.approx(ref, rel=1e-12)
    assert (res.only_a, res.only_b, res.exact) == (counts[1], counts[2], True)


def test_chi_square_mcnemar_has_the_continuity_correction():
    a, b = _outcomes(100, 40, 22, 60)
    res = mcnemar(a, b, exact=False)
    stat = (abs(40 - 22) - 1) ** 2 / (40 + 22)
    assert res.statistic == pytest.approx(stat)
    assert res.pvalue == pytest.approx(sps.chi2.sf(stat, df=1))
    assert mcnemar(a, b).exact is False  # 62 discordant pairs: the approximation by default
    assert mcnemar(*_outcomes(10, 5, 4, 3)).exact is True


def test_mcnemar_edge_cases():
    a, b = _outcomes(10, 0, 0, 4)
    assert mcnemar(a, b).pvalue == 1.0
    with pytest.raises(ValueError, match="binary"):
        mcnemar([0, 2, 1], [1, 1, 0])


def test_holm_on_the_textbook_example():
    # Four hypotheses, alpha = 0.05 (the Holm-Bonferroni example on Wikipedia): sorted
    # p = 0.005, 0.01, 0.03, 0.04 against 0.05/4, 0.05/3, 0.05/2: the first two are rejected,
    # 0.03 > 0.025 stops the procedure.
    res = holm_bonferroni([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert res.pvalues_adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert res.reject.tolist() == [True, False, False, True]


def test_holm_rejects_at_least_what_bonferroni_rejects():
    p = np.random.default_rng(6).uniform(0, 0.05, 20) ** 1.5
    res = holm_bonferroni(p)
    bonferroni = np.minimum(1, len(p) * p) <= 0.05
    assert np.all(res.reject[bonferroni])
    assert np.all(res.pvalues_adjusted >= p) and np.all(res.pvalues_adjusted <= 1)
    with pytest.raises(ValueError):
        holm_bonferroni([0.1, 1.2])
