"""The Gumbel scheme: its marginal over keys is the model's distribution (χ² over many
keys), its null score is Gamma(T, 1), it is deterministic given the key, and its
detector finds its text."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from fmlab.watermark import KGW, Gumbel, generate, prf
from fmlab.watermark.theory import chi_square_gof

P = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.015, 0.005])
CONTEXT = np.array([[3, 1, 4, 1]])


def _draws(sampler, keys: np.ndarray) -> np.ndarray:
    counts = np.zeros(len(P))
    np.add.at(counts, sampler(keys), 1)
    return counts


def test_marginal_over_keys_is_the_model_distribution():
    g = Gumbel(len(P), context_width=4)
    keys = prf.derive_keys(0, 40_000)

    def sample(k):
        r = g.uniforms(k, np.repeat(CONTEXT, len(k), 0))
        return g.choose(np.tile(P, (len(k), 1)), r)

    res = chi_square_gof(_draws(sample, keys)[None], P[None])
    assert res["p"] > 1e-3 and abs(res["kl_corrected"]) < 1e-3


def test_the_test_has_power_against_a_biased_sampler():
    """The same χ² rejects KGW's key-marginal (δ = 2) and a plausible-looking wrong
    Gumbel rule (argmax r_i · p_i): the distortion-free claim is not vacuous."""
    keys = prf.derive_keys(1, 40_000)
    g = Gumbel(len(P), context_width=4)
    r = g.uniforms(keys, np.repeat(CONTEXT, len(keys), 0))
    wrong = _draws(lambda k: (r * P).argmax(-1), keys)
    assert chi_square_gof(wrong[None], P[None])["p"] < 1e-6
    kgw = KGW(len(P), 0.5, 2.0)
    green = kgw.green_rows(keys, np.repeat(CONTEXT[:, -1:], len(keys), 0))
    biased = P * np.exp(2.0 * green)
    biased /= biased.sum(-1, keepdims=True)
    draws = torch.multinomial(
        torch.from_numpy(biased), 1, generator=torch.Generator().manual_seed(0)
    )
    counts = np.bincount(draws[:, 0].numpy(), minlength=len(P)).astype(float)
    assert chi_square_gof(counts[None], P[None])["p"] < 1e-6


def test_null_scores_are_exponential():
    g = Gumbel(1000, context_width=2)
    ids = np.random.default_rng(0).integers(0, 1000, (1, 400))
    s = g.token_scores(ids, 77)[0, 2:]
    assert stats.kstest(s, "expon").pvalue > 1e-3


def test_deterministic_given_the_key_and_detected(bigram):
    g = Gumbel(bigram.vocab, context_width=2)
    prompts = torch.randint(0, bigram.vocab, (4, 3), generator=torch.Generator().manual_seed(0))
    a = generate(bigram, prompts, 80, g, 5, generator=torch.Generator().manual_seed(1))
    b = generate(bigram, prompts, 80, g, 5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.tokens, b.tokens)  # no randomness besides the key
    hit = g.detect(a.tokens[0], 5, start=3)
    miss = g.detect(a.tokens[0], 6, start=3)
    assert hit.p_value < 1e-6 and abs(miss.z) < 3
