"""Attacks and exact quantities: substitution replaces what it says, the expected green
count after it matches simulation (and a cruder formula does not), Theorem 4.2's bound
holds against the exact green probability, the KL formula is the KL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fmlab.watermark import KGW, generate
from fmlab.watermark.attacks import expected_green_after_substitution, resample_spans, substitute
from fmlab.watermark.theory import green_bound, kgw_kl, kl, spike_entropy, spike_modulus


def test_substitute_replaces_exactly_k_generated_tokens_by_other_tokens():
    tokens = torch.randint(0, 10, (5, 30), generator=torch.Generator().manual_seed(0))
    out, mask = substitute(tokens, 6, 0.25, 10, torch.Generator().manual_seed(1))
    assert torch.equal(out[:, :6], tokens[:, :6])
    assert (mask.sum(1) == 6).all()  # round(0.25 · 24)
    changed = out[:, 6:] != tokens[:, 6:]
    assert torch.equal(changed, mask)


def test_resample_spans_only_touches_its_spans(bigram):
    tokens = torch.randint(0, 64, (4, 40), generator=torch.Generator().manual_seed(0))
    out, mask = resample_spans(tokens, 10, 0.5, 5, bigram, torch.Generator().manual_seed(1))
    assert (mask.sum(1) == 15).all()  # 3 spans of 5 out of 30
    assert torch.equal(out[:, 10:][~mask], tokens[:, 10:][~mask])


@pytest.mark.parametrize("seeding", ["keyed", "lefthash"])
def test_expected_green_after_substitution_matches_simulation(seeding):
    """Texts watermarked under their own keys (uniform model, δ = 5: mostly green), each
    attacked once; the mean measured-minus-expected green count is ~0 within its standard
    error. Taking a replaced token under an unchanged context as green with probability γ
    (forgetting that the old token held one of the γ|V| green places) is measurably wrong."""
    V, n_texts, T, eps = 16, 1500, 40, 0.3
    s = KGW(V, 0.5, 5.0, seeding)
    keys = np.arange(n_texts, dtype=np.uint64) * np.uint64(7919) + np.uint64(1)
    uniform = lambda ids: torch.full((ids.shape[0], V), -math.log(V), dtype=torch.float64)  # noqa: E731
    prompts = torch.randint(1, V, (n_texts, 2), generator=torch.Generator().manual_seed(0))
    out = generate(uniform, prompts, T, s, keys, generator=torch.Generator().manual_seed(1))
    flags = s.green_flags(out.tokens.numpy(), keys)[:, 2:]
    attacked, _ = substitute(out.tokens, 2, eps, V, torch.Generator().manual_seed(2))
    measured = s.detect_batch(attacked.numpy(), keys, 2, dedupe=False)["green"]
    k = round(eps * T)
    d = measured - expected_green_after_substitution(flags, k, 1, s.gamma_exact, V)
    assert abs(d.mean()) < 3 * d.std() / math.sqrt(n_texts)
    d_wrong = measured - expected_green_after_substitution(flags, k, 1, s.gamma_exact, None)
    assert abs(d_wrong.mean()) > 3 * d_wrong.std() / math.sqrt(n_texts)


def test_spike_entropy_and_bound_limits():
    gamma, delta = 0.25, 2.0
    z = spike_modulus(gamma, delta)
    point = np.eye(10)[0]
    uniform = np.full(10, 0.1)
    assert spike_entropy(point, z) == pytest.approx(1 / (1 + z))
    assert spike_entropy(uniform, z) == pytest.approx(10 / (10 + z))
    assert green_bound(point, gamma, delta) == pytest.approx(gamma)  # tight at a point mass


@pytest.mark.parametrize("seed", range(4))
def test_bound_holds_for_the_exact_green_probability(seed):
    """E over random green lists of P(green) ≥ the bound (Theorem 4.2), estimated over
    20,000 lists for a random distribution."""
    rng = np.random.default_rng(seed)
    V, gamma, delta = 12, 0.25, 2.0
    p = rng.dirichlet(np.full(V, 0.3))
    k = int(gamma * V)
    perms = np.argsort(rng.random((20_000, V)), axis=1)[:, :k]
    green = np.zeros((20_000, V), dtype=bool)
    np.put_along_axis(green, perms, True, axis=1)
    w = p * np.exp(delta * green)
    exact = ((w * green).sum(1) / w.sum(1)).mean()
    assert exact >= green_bound(p, gamma, delta) - 3 * 0.5 / math.sqrt(20_000)


def test_kgw_kl_formula_is_the_kl():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(20), size=5)
    green = rng.random((5, 20)) < 0.5
    biased = p * np.exp(1.3 * green)
    biased /= biased.sum(-1, keepdims=True)
    np.testing.assert_allclose(kgw_kl(p, green, 1.3), kl(biased, p), rtol=1e-10)
