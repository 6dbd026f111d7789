"""The synthetic Zipfian Markov language: exact entropy rate, stationary law, sampling."""

import math

import numpy as np
import pytest
import torch

from fmlab.config import ConfigError
from fmlab.errors import UserInputError
from fmlab.tasks.language import (
    LanguageConfig,
    entropy,
    make_language,
    stationary_distribution,
    zipf_probs,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_two_token_chain_matches_hand_computation():
    """V = 2, k = 1, Zipf s = 1: every state's next-token law is (2/3, 1/3) in some order,
    so h = H(2/3, 1/3) = ln 3 - (2/3) ln 2 whatever π is; π of a two-state chain with
    P(0→1) = a, P(1→0) = b is (b, a) / (a + b)."""
    lang = make_language(LanguageConfig(vocab_size=2, order=1, zipf_exponent=1.0, seed=3))
    assert lang.entropy_rate == pytest.approx(math.log(3) - 2 / 3 * math.log(2), abs=1e-12)
    a, b = lang.transition[0, 1], lang.transition[1, 0]
    assert sorted(lang.transition[0]) == pytest.approx([1 / 3, 2 / 3])
    np.testing.assert_allclose(lang.stationary, np.array([b, a]) / (a + b), atol=1e-12)


def test_uniform_transitions_have_entropy_log_v():
    lang = make_language(LanguageConfig(vocab_size=5, order=2, zipf_exponent=0.0))
    assert lang.entropy_rate == pytest.approx(math.log(5), abs=1e-12)
    np.testing.assert_allclose(lang.stationary, np.full(25, 1 / 25), atol=1e-12)
    np.testing.assert_allclose(lang.optimal_loss(4), np.full(4, math.log(5)), atol=1e-12)


def test_stationary_law_agrees_with_a_dense_eigenvector():
    """Independent check: build the k-gram transition matrix with loops and take the
    eigenvector of eigenvalue 1 of its transpose."""
    cfg = LanguageConfig(vocab_size=3, order=2, zipf_exponent=1.3, token_skew=0.5, seed=7)
    lang = make_language(cfg)
    V, S = 3, 9
    P = np.zeros((S, S))
    for s in range(S):
        for y in range(V):
            P[s, (s % V) * V + y] += lang.transition[s, y]
    w, vecs = np.linalg.eig(P.T)
    pi = np.real(vecs[:, np.argmin(np.abs(w - 1))])
    np.testing.assert_allclose(lang.stationary, pi / pi.sum(), atol=1e-12)
    h = sum(pi[s] / pi.sum() * -sum(p * math.log(p) for p in P[s] if p > 0) for s in range(S))
    assert lang.entropy_rate == pytest.approx(h, abs=1e-12)


def test_rows_are_zipf_laws_over_a_permutation():
    cfg = LanguageConfig(vocab_size=12, order=2, zipf_exponent=1.5, support=5, seed=1)
    lang = make_language(cfg)
    expected = np.concatenate([np.zeros(7), np.sort(zipf_probs(5, 1.5))])
    for row in lang.transition[:50]:
        np.testing.assert_allclose(np.sort(row), expected, atol=1e-15)
    assert zipf_probs(3, 1.0) == pytest.approx(np.array([1, 1 / 2, 1 / 3]) / (11 / 6))


def test_token_skew_makes_frequencies_heavy_tailed():
    flat = make_language(LanguageConfig(vocab_size=16, order=2, token_skew=0.0))
    skew = make_language(LanguageConfig(vocab_size=16, order=2, token_skew=1.0))
    # the same per-state entropies (Zipf over all 16 tokens), but skewed token frequencies
    assert flat.entropy_rate == pytest.approx(skew.entropy_rate, abs=1e-12)
    assert skew.unigram_entropy < flat.unigram_entropy

    def spread(lang):  # max/min token frequency, and the share of the top 10 % of states
        m, p = lang.marginal(1), np.sort(lang.stationary)[::-1]
        return m.max() / m.min(), p[: len(p) // 10].sum()

    (ratio_flat, top_flat), (ratio_skew, top_skew) = spread(flat), spread(skew)
    assert ratio_skew > 2 * ratio_flat and top_skew > 1.5 * top_flat
    assert np.argmax(skew.marginal(1)) == 0  # token 0 has the largest Plackett–Luce weight


@pytest.fixture(scope="module")
def long_sample():
    lang = make_language(LanguageConfig(vocab_size=8, order=2, zipf_exponent=1.0, seed=2))
    return lang, lang.sample(400, 1000, gen(0))  # 400k tokens


def test_entropy_rate_matches_an_empirical_estimate(long_sample):
    """The mean surprisal -log P(x_t | state) along sampled text estimates h without bias;
    sequences are independent, so their means give the standard error."""
    lang, tokens = long_sample
    probs = lang.next_token_probs(tokens[:, :-1])[:, lang.order - 1 :]  # (B, T', V)
    nxt = tokens[:, lang.order :]
    surprisal = -torch.log(probs.gather(-1, nxt[..., None])[..., 0]).numpy()
    per_seq = surprisal.mean(1)
    se = per_seq.std(ddof=1) / math.sqrt(len(per_seq))
    assert abs(per_seq.mean() - lang.entropy_rate) < 4 * se
    assert se < 0.01  # the check is sharp: h ≈ 1.5 nats


def test_counts_follow_the_table_and_the_stationary_law(long_sample):
    """Plug-in conditional entropy from counts (Miller–Madow corrected) and the empirical
    state frequencies agree with the exact values — a check independent of the table."""
    lang, tokens = long_sample
    V, k = lang.vocab_size, lang.order
    states = lang.states(tokens[:, :-1]).reshape(-1).numpy()
    nxt = tokens[:, k:].reshape(-1).numpy()
    counts = np.zeros((lang.n_states, V))
    np.add.at(counts, (states, nxt), 1)
    n = counts.sum()
    rows = counts.sum(1)
    plug_in = float((rows / n) @ entropy(counts / np.maximum(rows, 1)[:, None]))
    miller_madow = plug_in + ((counts > 0).sum(1) - 1).clip(0).sum() / (2 * n)
    assert miller_madow == pytest.approx(lang.entropy_rate, abs=0.005)
    freq = rows / n
    tol = 6 * np.sqrt(lang.stationary * (1 - lang.stationary) / len(tokens))  # per-sequence SE
    assert np.all(np.abs(freq - lang.stationary) < tol + 1e-4)


def test_optimal_loss_at_early_positions(long_sample):
    """Position 0 has no context (unigram entropy); position 1 of a 2nd-order chain sees one
    token: H(x0, x1) - H(x0). Checked against empirical counts over the sequences."""
    lang, tokens = long_sample
    opt = lang.optimal_loss(5)
    assert opt[0] == pytest.approx(lang.unigram_entropy)
    assert opt[2:] == pytest.approx([lang.entropy_rate] * 3)
    assert opt[0] > opt[1] > opt[2]
    V, starts = lang.vocab_size, lang.sample(50_000, 3, gen(1))  # many fresh beginnings
    pair = np.zeros((V, V))
    np.add.at(pair, (starts[:, 0].numpy(), starts[:, 1].numpy()), 1)
    n, pair = pair.sum(), pair / pair.sum()
    # plug-in entropies with the Miller–Madow correction (cells - 1) / 2n; SE ≈ 0.005 here
    joint = entropy(pair.ravel()) + ((pair > 0).sum() - 1) / (2 * n)
    first = entropy(pair.sum(1)) + ((pair.sum(1) > 0).sum() - 1) / (2 * n)
    assert joint - first == pytest.approx(opt[1], abs=0.02)
    probs = lang.next_token_probs(tokens[:, :3])
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(tokens), 3, dtype=torch.float64))
    np.testing.assert_allclose(  # P(x1 | x0) from the model against counts for x0 = 0
        probs[tokens[:, 0] == 0][0, 0].numpy(), pair[0] / pair[0].sum(), atol=0.03
    )


def test_sampling_is_seeded_and_ignores_global_state():
    lang = make_language(LanguageConfig(vocab_size=16, order=2))
    torch.manual_seed(1)
    a = lang.sample(4, 20, gen(5))
    torch.manual_seed(2)
    b = lang.sample(4, 20, gen(5))
    assert torch.equal(a, b) and a.dtype == torch.int64 and a.shape == (4, 20)
    assert not torch.equal(a, lang.sample(4, 20, gen(6)))
    assert int(a.min()) >= 0 and int(a.max()) < 16
    assert lang.sample(3, 1, gen(0)).shape == (3, 1)  # shorter than the order
    again = make_language(LanguageConfig(vocab_size=16, order=2))
    assert np.array_equal(again.transition, lang.transition)
    other = make_language(LanguageConfig(vocab_size=16, order=2, seed=1))
    assert not np.array_equal(other.transition, lang.transition)


def test_bad_configs_are_clear_errors():
    with pytest.raises(ConfigError, match="support=9 exceeds vocab_size=8"):
        LanguageConfig().override(vocab_size=8, support=9)
    with pytest.raises(ConfigError, match=r"vocab_size\*\*order"):
        LanguageConfig().override(vocab_size=64, order=4)
    with pytest.raises(ConfigError, match="zipf_exponent"):
        LanguageConfig().override(zipf_exponent=-1)
    with pytest.raises(UserInputError, match="2 closed classes"):
        stationary_distribution(np.eye(2), order=1)  # two absorbing tokens
    with pytest.raises(ValueError, match="batch_size and seq_len"):
        make_language(LanguageConfig(vocab_size=4)).sample(0, 5, gen(0))


def test_transient_states_get_zero_probability():
    # token 1 always follows; token 0 is never reached again after the start
    table = np.array([[0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(stationary_distribution(table, order=1), [0.0, 1.0], atol=1e-12)


def test_a_tiny_language_has_an_entropy_rate_below_log_v():
    lang = make_language(LanguageConfig(vocab_size=4))
    assert lang.vocab_size == 4 and 0 < lang.entropy_rate < math.log(4)
