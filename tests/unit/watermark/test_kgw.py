"""KGW: fmlab's green lists, processor and detector against ``transformers``' built-ins,
the z-test against scipy's exact binomial tail, and the detector's scoring rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from fmlab.watermark import KGW
from fmlab.watermark.detect import binomial_test, gamma_test, min_tokens_binomial

transformers = pytest.importorskip("transformers")
from transformers.generation.logits_process import WatermarkLogitsProcessor  # noqa: E402


@pytest.mark.parametrize("key", [15485863, 7, 2**40 + 3])
def test_lefthash_green_lists_equal_transformers(key):
    V = 259
    hf = WatermarkLogitsProcessor(vocab_size=V, device="cpu", greenlist_ratio=0.25, hashing_key=key)
    rows = KGW(V, 0.25, 2.0, "lefthash").green_rows(key, np.arange(V)[:, None])
    for prev in range(V):
        expected = np.zeros(V, dtype=bool)
        expected[hf._get_greenlist_ids(torch.tensor([3, prev])).numpy()] = True
        assert (rows[prev] == expected).all(), prev


def test_lefthash_bias_equals_transformers_processor():
    V, key = 100, 12345
    hf = WatermarkLogitsProcessor(
        vocab_size=V, device="cpu", greenlist_ratio=0.3, bias=1.7, hashing_key=key
    )
    ours = KGW(V, 0.3, 1.7, "lefthash")
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(V, (6, 9), generator=gen)
    scores = torch.randn(6, V, generator=gen)
    torch.testing.assert_close(ours.bias(scores, ids, key), hf(ids, scores.clone()))


@pytest.mark.parametrize("dedupe", [False, True])
def test_detector_counts_and_z_equal_transformers(dedupe):
    """Same scored tokens and green counts as WatermarkDetector; with γ|V| an integer
    (256 · 0.25) the z-scores are equal too (fmlab uses int(γ|V|)/|V| for γ)."""
    from transformers import GPT2Config, WatermarkDetector, WatermarkingConfig

    V, key = 256, 99
    config = GPT2Config(vocab_size=V, bos_token_id=V - 1)
    wm = WatermarkingConfig(greenlist_ratio=0.25, hashing_key=key, seeding_scheme="lefthash")
    hf = WatermarkDetector(config, "cpu", wm, ignore_repeated_ngrams=dedupe)
    ids = torch.randint(0, 20, (3, 60), generator=torch.Generator().manual_seed(1))  # many repeats
    theirs = hf(ids, return_dict=True)
    ours = KGW(V, 0.25, 2.0, "lefthash").detect_batch(ids.numpy(), key, 0, dedupe=dedupe)
    np.testing.assert_array_equal(ours["n"], theirs.num_tokens_scored)
    np.testing.assert_array_equal(ours["green"], theirs.num_green_tokens)
    np.testing.assert_allclose(ours["z"], theirs.z_score, rtol=1e-12)


def test_exact_gamma_is_used_when_gamma_v_is_not_an_integer():
    for seeding in ("keyed", "lefthash"):
        s = KGW(259, 0.25, seeding=seeding)
        assert s.green_size == 64 and s.gamma_exact == pytest.approx(64 / 259)


def test_keyed_green_lists_have_the_exact_size_and_depend_on_the_key_everywhere():
    V = 64
    s = KGW(V, 0.25)
    contexts = np.arange(V)[:, None]
    a, b = s.green_rows(1, contexts), s.green_rows(2, contexts)
    assert (a.sum(1) == 16).all() and (b.sum(1) == 16).all()
    assert not (a[0] == b[0]).all()  # also after token 0
    overlap = (a & b).sum() / a.sum()
    assert abs(overlap - 0.25) < 0.05  # independent lists share a fraction γ
    # the detector's per-token test agrees with the generator's full rows
    ids = np.array([[5, 17, 3, 60, 40, 3, 17, 0, 9]])
    flags = s.green_flags(ids, 9)[0, 1:]
    rows = s.green_rows(9, ids[0, :-1, None])
    np.testing.assert_array_equal(flags, rows[np.arange(8), ids[0, 1:]])
    lefthash = KGW(V, 0.25, seeding="lefthash")
    # transformers' lefthash seeds with key · x_{t-1}: after token 0 every key agrees
    assert (lefthash.green_rows(1, [[0]]) == lefthash.green_rows(2, [[0]])).all()


def test_z_test_against_scipy_binomial_tail():
    n = np.array([10, 50, 200, 5000])
    hits = np.array([9, 33, 129, 1330])
    got = binomial_test(hits, n, 0.25)
    np.testing.assert_allclose(got["p_value"], stats.binom.sf(hits - 1, n, 0.25), rtol=1e-12)
    z = (hits - 0.25 * n) / np.sqrt(n * 0.25 * 0.75)
    np.testing.assert_allclose(got["z"], z)
    np.testing.assert_allclose(got["p_normal"], stats.norm.sf(z))
    # the normal tail is the paper's approximation: close at large n, not at small n
    rel = np.abs(got["p_normal"] / got["p_value"] - 1)
    assert rel[-1] < 0.5 and rel[0] > 0.5


def test_gamma_test_against_scipy():
    n, s = np.array([1, 20, 200]), np.array([3.0, 35.0, 260.0])
    got = gamma_test(s, n)
    np.testing.assert_allclose(got["p_value"], stats.gamma.sf(s, n), rtol=1e-10)


def test_min_tokens_is_the_smallest_length_that_can_reach_the_fpr():
    fpr = 3.17e-5
    T = min_tokens_binomial(0.25, fpr)
    assert T == 8
    assert stats.binom.sf(T - 1, T, 0.25) <= fpr < stats.binom.sf(T - 2, T - 1, 0.25)


def test_detection_is_invariant_to_the_excluded_prompt():
    """Only generated tokens are scored; their context may reach into the prompt, so two
    prompts that end alike give the same result, whatever else they hold — and n-grams
    that also occur in the prompt still count."""
    s = KGW(50, 0.5, seeding="keyed", context_width=2)
    rng = np.random.default_rng(0)
    gen = rng.integers(0, 50, 80)
    tail = rng.integers(0, 50, 2)
    a = np.concatenate([rng.integers(0, 50, 7), tail, gen])
    b = np.concatenate([gen[:30], tail, gen])  # the prompt repeats generated n-grams
    da, db = s.detect(a, 5, start=9), s.detect(b, 5, start=32)
    assert (da.n_scored, da.statistic, da.z) == (db.n_scored, db.statistic, db.z)
    assert da.n_scored == len(
        np.unique(np.lib.stride_tricks.sliding_window_view(np.concatenate([tail, gen]), 3), axis=0)
    )
    assert da.per_token[:9] == [None] * 9


def test_unwatermarked_p_values_are_uniform_over_keys():
    """Random texts against many keys: the exact p-values of distinct bigrams are
    (discrete-)uniform; a biased green list would make them pile up near 0 or 1."""
    V = 1000
    s = KGW(V, 0.5)
    ids = np.random.default_rng(3).integers(0, V, (1, 120))
    ps = np.array([s.detect(ids[0], key).p_value for key in range(400)])
    zs = np.array([s.detect(ids[0], key).z for key in range(400)])
    assert abs(zs.mean()) < 0.2 and abs(zs.std() - 1) < 0.15
    assert 0.03 < (ps <= 0.1).mean() < 0.18
