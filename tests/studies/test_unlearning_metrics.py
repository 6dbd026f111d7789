"""The ``unlearning`` study's metrics against hand computations and reference
implementations: truth ratio and forget quality on a 3-question toy, the KS p-value
against scipy, min-k % against a direct implementation, the MIA AUC against sklearn,
ROUGE-L recall by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fmlab.studies.unlearning import metrics as M


def test_truth_ratio_and_forget_quality_by_hand():
    para = np.array([0.5, 1.0, 1.5])  # mean token NLL of each paraphrased answer
    pert = np.array([[1.0, 1.5], [1.0, 1.0], [2.0, 2.0]])  # two perturbed answers each
    r = M.truth_ratio(para, pert)
    # R = exp(-mean perturbed NLL) / exp(-paraphrase NLL)
    hand = [math.exp(-1.25) / math.exp(-0.5), 1.0, math.exp(-2.0) / math.exp(-1.5)]
    np.testing.assert_allclose(r, hand, rtol=1e-8)
    assert M.tr_forget(r) == pytest.approx(np.mean([hand[0], 1.0, hand[2]]), rel=1e-8)
    assert M.tr_utility(r) == pytest.approx(np.mean([1 - hand[0], 0.0, 1 - hand[2]]), rel=1e-7)
    # against a retrained model's ratios [1.2, 0.9, 1.1]: sorted ours 0.47, 0.61, 1.0;
    # D = 2/3 (at 0.61: 2/3 of ours, none of theirs). Of the C(6, 3) = 20 lattice paths
    # the 8 with |i - j| <= 1 stay inside the band, so p = 1 - 8/20.
    retrained = np.array([1.2, 0.9, 1.1])
    assert M.ks_statistic(r, retrained) == pytest.approx(2 / 3)
    assert M.forget_quality(r, retrained) == pytest.approx(0.6)
    assert M.forget_quality(retrained, retrained) == 1.0


@pytest.mark.parametrize(("m", "n"), [(1, 4), (5, 7), (20, 20), (40, 33), (10, 50), (150, 120)])
def test_ks_pvalue_matches_scipy(m, n):
    rng = np.random.default_rng(m * 100 + n)
    for shift in (0.0, 0.4, 1.5):
        x, y = rng.normal(size=m), rng.normal(shift, size=n)
        ours, ref = M.ks_pvalue(x, y), stats.ks_2samp(x, y).pvalue
        assert ours == pytest.approx(ref, rel=1e-9, abs=1e-300)


def test_ks_pvalue_keeps_tiny_values_and_ties():
    x, y = np.arange(50.0), np.arange(50.0) + 100
    assert M.ks_pvalue(x, y) == pytest.approx(stats.ks_2samp(x, y).pvalue, rel=1e-9)
    assert M.ks_pvalue(x, y) < 1e-25  # log10 forget quality needs them
    ties_x, ties_y = np.array([1, 1, 2, 2, 3.0]), np.array([1, 2, 2, 3, 3, 3.0])
    assert M.ks_pvalue(ties_x, ties_y) == pytest.approx(stats.ks_2samp(ties_x, ties_y).pvalue)


def test_min_k_matches_a_direct_implementation():
    rng = np.random.default_rng(0)
    for length in (1, 3, 7, 40):
        lp = np.log(rng.uniform(0.01, 1, size=length))
        for k in (0.1, 0.2, 0.4, 1.0):
            num = max(1, int(length * k))
            direct = -torch.topk(torch.tensor(lp), num, largest=False).values.mean().item()
            assert M.min_k_score(lp, k) == pytest.approx(direct, rel=1e-12)


def test_mia_auc_matches_sklearn_and_its_convention():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    members, held_out = rng.normal(0, 1, 30), rng.normal(0.7, 1, 25)
    labels = np.r_[np.zeros(30), np.ones(25)]  # open-unlearning: forget 0, holdout 1
    ref = metrics.roc_auc_score(labels, np.r_[members, held_out])
    assert M.mia_auc(members, held_out) == pytest.approx(ref, rel=1e-12)
    assert M.mia_auc([0.1, 0.2], [1.0, 2.0]) == 1.0  # forget set recognised
    assert M.mia_auc([1.0, 1.0], [1.0, 1.0]) == 0.5


def test_zlib_rouge_and_harmonic_mean_by_hand():
    import zlib

    text = "lima is the birthplace ."
    assert M.zlib_score(2.0, text) == 2.0 / len(zlib.compress(text.encode()))
    # reference words x was born in lima; common subsequence "x … lima": 2 of 5
    assert M.rouge_l_recall("the birthplace of x is lima .", "x was born in lima .") == 0.4
    assert M.rouge_l_recall("x was born in lima", "X was born in Lima.") == 1.0
    assert M.rouge_l_recall("", "x") == 0.0
    assert M.harmonic_mean([0.5, 1.0]) == pytest.approx(2 / 3)
    assert M.harmonic_mean([0.5, 0.0]) == 0.0
    c, w = np.array([0.0]), np.array([[math.log(2), math.log(2)]])  # p = 1 vs two at 1/2
    assert M.prob_with_options(c, w) == pytest.approx(0.5)


def test_frontier_area():
    # utility falls as forget quality rises; target at (1.0, -4)
    u, q = np.array([1.0, 0.8, 0.2]), np.array([-4.0, -2.0, 0.0])
    # best log10 FQ at utility >= u: 0 for u <= 0.2, -2 up to 0.8, -4 above
    grid = np.linspace(0, 1, 101)
    hand = np.mean([0.0 if x <= 0.2 else -2.0 if x <= 0.8 else -4.0 for x in grid])
    assert M.frontier_area(u, q, 1.0) == pytest.approx(hand)
