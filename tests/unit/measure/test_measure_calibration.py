"""Calibration metrics against hand computations, closed forms and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss

from fmlab.measure import (
    apply_temperature,
    brier_score,
    calibration_report,
    ece,
    fit_temperature,
    mce,
    nll,
    reliability_diagram,
    softmax,
)

# conf = max row, correct = argmax == label
HAND_PROBS = np.array(
    [
        [0.90, 0.05, 0.05],  # .90 ✓
        [0.85, 0.10, 0.05],  # .85 ✗
        [0.10, 0.70, 0.20],  # .70 ✓
        [0.30, 0.65, 0.05],  # .65 ✗
        [0.05, 0.20, 0.75],  # .75 ✓
        [0.50, 0.30, 0.20],  # .50 ✓
        [0.45, 0.35, 0.20],  # .45 ✗
        [0.38, 0.32, 0.30],  # .38 ✗
    ]
)
HAND_LABELS = np.array([0, 1, 1, 0, 2, 0, 2, 1])


def test_ece_and_mce_match_hand_computation_equal_width():
    # 5 bins of width 0.2:
    #  (.8, 1]  {.90 ✓, .85 ✗}        conf .875  acc 1/2  gap .375   n=2
    #  (.6, .8] {.70 ✓, .65 ✗, .75 ✓}  conf .700  acc 2/3  gap 1/30   n=3
    #  (.4, .6] {.50 ✓, .45 ✗}        conf .475  acc 1/2  gap .025   n=2
    #  (.2, .4] {.38 ✗}               conf .380  acc 0    gap .380   n=1
    # ECE = (2·.375 + 3/30 + 2·.025 + .38) / 8 = 1.28 / 8 = 0.16; MCE = 0.38
    assert ece(HAND_PROBS, HAND_LABELS, n_bins=5) == pytest.approx(0.16, abs=1e-12)
    assert mce(HAND_PROBS, HAND_LABELS, n_bins=5) == pytest.approx(0.38, abs=1e-12)
    diagram = reliability_diagram(HAND_PROBS, HAND_LABELS, n_bins=5)
    np.testing.assert_array_equal(diagram.count, [0, 1, 2, 3, 2])
    np.testing.assert_allclose(diagram.confidence[1:], [0.38, 0.475, 0.7, 0.875])
    np.testing.assert_allclose(diagram.accuracy[1:], [0, 0.5, 2 / 3, 0.5])
    assert np.isnan(diagram.confidence[0]) and np.isnan(diagram.accuracy[0])  # empty bin
    with pytest.raises(ValueError):
        diagram.count[0] = 5  # frozen result: arrays are read-only


def test_ece_matches_hand_computation_equal_mass():
    # 4 bins of 2 by sorted confidence: {.38 ✗, .45 ✗} gap .415, {.50 ✓, .65 ✗} gap .075,
    # {.70 ✓, .75 ✓} gap .275, {.85 ✗, .90 ✓} gap .375 → ECE = 1.14 / 4 = 0.285
    got = ece(HAND_PROBS, HAND_LABELS, n_bins=4, strategy="quantile")
    assert got == pytest.approx(0.285, abs=1e-12)


@pytest.mark.parametrize(("n", "n_bins"), [(1000, 10), (1003, 15)])
def test_equal_mass_bins_have_equal_counts(n, n_bins):
    rng = np.random.default_rng(0)
    probs = softmax(3 * rng.normal(size=(n, 5)))
    labels = rng.integers(0, 5, size=n)
    diagram = reliability_diagram(probs, labels, n_bins=n_bins, strategy="quantile")
    assert diagram.count.sum() == n
    assert diagram.count.max() - diagram.count.min() <= 1  # exactly equal when B | n
    if n % n_bins == 0:
        assert set(diagram.count.tolist()) == {n // n_bins}
    assert np.all(np.diff(diagram.confidence) >= 0)  # bins ordered by confidence


def test_brier_and_nll_match_sklearn_and_closed_forms():
    rng = np.random.default_rng(1)
    K = 4
    probs = softmax(rng.normal(size=(500, K)))
    labels = rng.integers(0, K, size=500)
    assert brier_score(probs, labels) == pytest.approx(
        brier_score_loss(labels, probs, labels=range(K)), abs=1e-12
    )
    assert nll(probs, labels) == pytest.approx(log_loss(labels, probs, labels=range(K)), abs=1e-12)
    uniform = np.full((10, K), 1 / K)
    y = np.arange(10) % K
    assert brier_score(uniform, y) == pytest.approx((K - 1) / K)  # (1−1/K)² + (K−1)/K²
    assert nll(uniform, y) == pytest.approx(np.log(K))
    assert brier_score(np.eye(K)[y], y) == 0.0


def test_report_agrees_with_the_individual_functions_and_accepts_torch():
    rng = np.random.default_rng(2)
    probs = softmax(2 * rng.normal(size=(300, 3)))
    labels = rng.integers(0, 3, size=300)
    rep = calibration_report(torch.tensor(probs), torch.tensor(labels), n_bins=10)
    assert rep.ece == pytest.approx(ece(probs, labels, 10))
    assert rep.ece_adaptive == pytest.approx(ece(probs, labels, 10, "quantile"))
    assert rep.mce == pytest.approx(mce(probs, labels, 10))
    assert rep.brier == pytest.approx(brier_score(probs, labels))
    assert rep.nll == pytest.approx(nll(probs, labels))
    assert rep.accuracy == pytest.approx(np.mean(probs.argmax(1) == labels))
    assert rep.n == 300


def _calibrated_model(n: int, K: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits z and labels drawn from softmax(z) (Gumbel-max): calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = 2.0 * rng.normal(size=(n, K))
    return z, np.argmax(z + rng.gumbel(size=(n, K)), axis=1)


def test_temperature_scaling_recovers_t_and_fixes_an_overconfident_model():
    z, y = _calibrated_model(20000, 10, seed=3)
    fit = fit_temperature(5.0 * z, y)  # over-confident by exactly a factor 5
    assert fit.temperature == pytest.approx(5.0, rel=0.05)
    assert fit.nll_after < fit.nll_before - 1.0  # measured 3.31 → 1.33
    assert fit.ece_after < 0.03 < 0.3 < fit.ece_before
    assert fit_temperature(z, y).temperature == pytest.approx(1.0, rel=0.05)


def test_temperature_fitted_on_validation_helps_on_held_out():
    z, y = _calibrated_model(10000, 10, seed=4)
    val, test = slice(0, 5000), slice(5000, None)
    T = fit_temperature(5.0 * z[val], y[val]).temperature
    before = softmax(5.0 * z[test])
    after = apply_temperature(torch.tensor(5.0 * z[test]), T)
    assert nll(after, y[test]) < nll(before, y[test])
    assert ece(after, y[test]) < ece(before, y[test])
    np.testing.assert_array_equal(after.argmax(1), before.argmax(1))  # accuracy unchanged


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        ece(np.ones((3, 2)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="labels must be in"):
        nll(np.full((2, 2), 0.5), np.array([0, 2]))
    with pytest.raises(ValueError, match="strategy"):
        ece(HAND_PROBS, HAND_LABELS, strategy="kmeans")
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(np.zeros((2, 2)), 0.0)
