"""Linear probes and Hewitt & Liang (2019) control-task selectivity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmlab.measure import control_labels, linear_probe


@pytest.fixture
def stats():
    """The probe's CIs come from fmlab.stats.bootstrap_ci, written in parallel."""
    return pytest.importorskip("fmlab.stats", reason="fmlab.stats (bootstrap_ci) not there yet")


def _tokens(seed: int, random_labels: bool, n: int = 4000, n_types: int = 200, d: int = 16):
    """Tokens of 200 word types; features = type embedding + noise (16-D).

    With ``random_labels`` every type gets a random label (a control task in disguise);
    otherwise the label is a linear function (3-way argmax) of the type embedding.
    200 types cannot all be memorised by a linear map from 16 dimensions, so a linear
    probe can read a linear property but only partly memorise random type labels.
    """
    rng = np.random.default_rng(seed)
    E = rng.normal(size=(n_types, d))  # (n_types, d)
    types = rng.integers(0, n_types, size=n)
    X = E[types] + 0.3 * rng.normal(size=(n, d))  # (n, d)
    if random_labels:
        y = rng.integers(0, 3, size=n_types)[types]
    else:
        y = np.argmax(E[types] @ rng.normal(size=(d, 3)), axis=1)
    return X, y, types


def test_linearly_decodable_label_gives_accurate_selective_probe(stats):
    X, y, types = _tokens(0, random_labels=False)
    r = linear_probe(torch.tensor(X, dtype=torch.float32), torch.tensor(y), word_types=types)
    # measured: test 0.90, control 0.48 (majority class 0.36), selectivity 0.42
    assert r.test_accuracy > 0.85
    assert r.train_accuracy > 0.85
    assert r.selectivity > 0.3
    assert r.control_test_accuracy < 0.6
    assert r.test_accuracy_ci.low <= r.test_accuracy <= r.test_accuracy_ci.high
    assert r.test_accuracy_ci.high - r.test_accuracy_ci.low < 0.06  # ~±1.96·√(.1·.9/1000)
    assert r.selectivity_ci.low > 0.25
    assert (r.n_train, r.n_test, r.n_classes) == (3000, 1000, 3)


def test_random_labels_give_selectivity_near_zero(stats):
    # Real and control tasks are then both "a random label per type": same difficulty,
    # so accuracies differ only by test noise and the task draw (measured |Δ| <= 0.05).
    X, y, types = _tokens(1, random_labels=True)
    r = linear_probe(X, y, word_types=types, seed=1)
    assert abs(r.selectivity) < 0.08
    assert r.test_accuracy < 0.6


def test_probe_is_deterministic_given_seed(stats):
    X, y, types = _tokens(2, random_labels=False, n=1000)
    a = linear_probe(X, y, word_types=types, seed=5, n_resamples=200)
    b = linear_probe(X, y, word_types=types, seed=5, n_resamples=200)
    assert a == b


def test_control_labels_are_a_function_of_type_with_the_label_distribution():
    rng = np.random.default_rng(3)
    types = rng.integers(0, 2000, size=50000)
    labels = rng.choice(3, size=50000, p=[0.6, 0.3, 0.1])
    ctl = control_labels(labels, types, seed=0)
    for t in np.unique(types)[:50]:
        assert np.unique(ctl[types == t]).size == 1  # one label per word type
    per_type = np.array([ctl[types == t][0] for t in np.unique(types)])
    # Types draw from the empirical distribution: 2000 draws, SE ≈ 0.011 for p=0.6.
    np.testing.assert_allclose(np.bincount(per_type) / per_type.size, [0.6, 0.3, 0.1], atol=0.04)
    np.testing.assert_array_equal(ctl, control_labels(labels, types, seed=0))
