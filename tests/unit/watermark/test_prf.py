"""The keyed pseudo-random function and permutation behind the green lists and ``r``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fmlab.watermark import prf


@pytest.mark.parametrize("n", [2, 3, 16, 17, 259, 50257])
def test_permute_is_a_bijection_of_range_n(n):
    seed = prf.seeds(np.array([11], np.uint64), np.array([[4, 2]]), prf.TAG_KGW)
    y = prf.permute(seed, np.arange(n), n)
    np.testing.assert_array_equal(np.sort(y), np.arange(n))


def test_permute_makes_uniform_k_subsets():
    """Over many seeds each token is in {i : π(i) < k} with probability k/n, and two
    tokens with the hypergeometric correlation -1/(n-1)."""
    n, k = 16, 4
    seeds = prf.derive_keys(0, 40_000)
    member = prf.permute(seeds[:, None], np.arange(n)[None, :], n) < k
    assert (member.sum(1) == k).all()
    freq = member.mean(0)
    assert stats.chisquare(member.sum(0)).pvalue > 1e-3 and abs(freq.mean() - 0.25) < 1e-12
    corr = np.corrcoef(member[:, 0], member[:, 1])[0, 1]
    assert abs(corr + 1 / (n - 1)) < 0.02


def test_uniforms_are_uniform_and_keyed():
    seeds = prf.seeds(prf.derive_keys(3, 2), np.array([[1], [1]]), prf.TAG_GUMBEL)
    u = prf.uniforms(seeds, np.arange(20_000))
    assert ((u > 0) & (u < 1)).all()
    assert stats.kstest(u[0], "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[0], u[1])[0, 1]) < 0.03  # another key: unrelated numbers
