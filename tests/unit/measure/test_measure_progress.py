"""Nanda et al.'s progress measures, pinned on logit tables that are exactly a known set
of Fourier terms: the restricted loss is then the full loss, and the excluded loss is
the loss of what is left when those terms are taken out."""

import math

import pytest
import torch
import torch.nn.functional as F

from fmlab.measure.progress import (
    component_norms,
    excluded_logits,
    excluded_loss,
    gini,
    key_share,
    neuron_frequencies,
    restricted_logits,
    restricted_loss,
    sum_components,
    sum_directions,
    sum_labels,
)

P = 13
KEYS = [2, 5]


def grid():
    a = torch.arange(P, dtype=torch.float64)
    A, B, C = torch.meshgrid(a, a, a, indexing="ij")  # (p, p, p): a, b, c
    return A, B, C


def fourier_logits(keys, scale=3.0):
    """Logits Σ_k scale·cos(w_k(a+b−c)): the trig algorithm of Nanda et al., (p², p)."""
    A, B, C = grid()
    out = torch.zeros(P, P, P, dtype=torch.float64)
    for k in keys:
        out += scale * torch.cos(2 * math.pi * k / P * (A + B - C))
    return out.reshape(P * P, P)


def other_terms():
    """Terms orthogonal to every cos/sin(w(a+b)) over the pairs: functions of a−b."""
    A, B, C = grid()
    w = 2 * math.pi / P
    return (1.5 * torch.cos(w * 3 * (A - B - C)) + 0.7 * torch.sin(w * (A - B) + 0.3)).reshape(
        P * P, P
    )


def ce(logits, labels):
    return F.cross_entropy(logits, labels).item()


def test_directions_are_orthonormal():
    d = sum_directions(P, range(1, P // 2 + 1))
    torch.testing.assert_close(d @ d.T, torch.eye(len(d), dtype=torch.float64))


def test_restricted_loss_equals_the_full_loss_on_pure_fourier_logits():
    logits = fourier_logits(KEYS)
    parts = sum_components(logits, P)
    torch.testing.assert_close(restricted_logits(parts, KEYS), logits)
    assert restricted_loss(parts, KEYS) == pytest.approx(ce(logits, sum_labels(P)), rel=1e-12)


def test_excluded_loss_is_the_loss_without_the_key_terms():
    fourier, rest = fourier_logits(KEYS), other_terms()
    logits = fourier + rest
    parts = sum_components(logits, P)
    rows = torch.arange(0, P * P, 3)  # a "training set"
    torch.testing.assert_close(excluded_logits(logits[rows], parts, KEYS, rows), rest[rows])
    expected = ce(rest[rows], sum_labels(P)[rows])
    assert excluded_loss(logits[rows], parts, KEYS, rows) == pytest.approx(expected, rel=1e-12)
    # and the restricted logits keep only the key terms (the rest averages to zero)
    torch.testing.assert_close(restricted_logits(parts, KEYS), fourier)


def test_pure_fourier_logits_excluded_are_uniform():
    logits = fourier_logits(KEYS)
    parts = sum_components(logits, P)
    rows = torch.arange(P * P)
    assert excluded_loss(logits, parts, KEYS, rows) == pytest.approx(math.log(P), rel=1e-12)


def test_a_missing_key_frequency_is_not_restored():
    logits = fourier_logits(KEYS)
    parts = sum_components(logits, P)
    torch.testing.assert_close(restricted_logits(parts, [2]), fourier_logits([2]))


def test_restricted_logits_carry_the_mean_logit():
    logits = fourier_logits(KEYS) + torch.linspace(-1, 1, P, dtype=torch.float64)
    parts = sum_components(logits, P)
    torch.testing.assert_close(restricted_logits(parts, KEYS), logits)


def test_neurons_of_one_frequency_are_found():
    A, B, _ = grid()
    a, b = A[:, :, 0].flatten(), B[:, :, 0].flatten()
    w = 2 * math.pi / P
    acts = torch.stack(
        [
            torch.relu(torch.cos(w * 2 * a) + torch.cos(w * 2 * b)),  # k = 2, through a ReLU
            torch.cos(w * 5 * (a + b) + 0.4),  # k = 5, products
            torch.sin(w * 5 * a),  # k = 5, linear in a
            torch.zeros(P * P),  # dead
        ],
        dim=1,
    )
    nf = neuron_frequencies(acts, P)
    assert nf.frequency[:3] == (2, 5, 5) and nf.frequency[3] == 0
    assert nf.share[1] == pytest.approx(1.0) and nf.share[2] == pytest.approx(1.0)
    assert nf.key_frequencies() == [2, 5]  # the dead neuron has no frequency
    noisy = torch.cat([acts, torch.cos(w * 3 * a)[:, None] + acts[:, :1]], dim=1)
    nf = neuron_frequencies(noisy, P)
    assert nf.key_frequencies() == [2, 3, 5]  # every varying neuron's best, as the authors
    assert nf.key_frequencies(0.85) == [2, 5]  # only the neurons clean in a cluster


def test_gini_and_key_share():
    assert gini(torch.ones(10)) == pytest.approx(0.0)
    assert gini(torch.tensor([0.0] * 9 + [1.0])) == pytest.approx(0.9)
    w = torch.zeros(P, 4, dtype=torch.float64)
    a = torch.arange(P, dtype=torch.float64)
    w[:, 0] = torch.cos(2 * math.pi * 2 * a / P)
    w[:, 1] = 1.0  # constant: not counted in the key share
    norms = component_norms(w, P)
    assert key_share(norms, [2]) == pytest.approx(1.0)
    assert key_share(norms, [3]) == pytest.approx(0.0)
