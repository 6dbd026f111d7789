"""Repeated-segment sequences and the induction-head measurements (Olsson et al. 2022)."""

from __future__ import annotations

import pytest
import torch

from fmlab.config import ConfigError
from fmlab.tasks import induction
from fmlab.tasks.induction import (
    InductionConfig,
    eval_batch,
    icl_score,
    prefix_matching_score,
    repeated_sequences,
    sample_batch,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sampling_is_seeded_and_deterministic():
    cfg = InductionConfig()
    a, b, c = (sample_batch(cfg, 32, gen(s)) for s in (0, 0, 1))
    for field in ("tokens", "src", "dst", "length", "repeat_mask"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert not torch.equal(a.tokens, c.tokens)
    assert torch.equal(eval_batch(cfg, 16, 5).tokens, eval_batch(cfg, 16, 5).tokens)


def test_segment_is_copied_later_within_bounds():
    cfg = InductionConfig(vocab_size=50, seq_len=40, min_segment=3, max_segment=12)
    batch = sample_batch(cfg, 400, gen(3))
    assert batch.tokens.shape == (400, 40) and batch.tokens.max() < 50
    for t, s, d, n in zip(batch.tokens, batch.src, batch.dst, batch.length, strict=True):
        s, d, n = int(s), int(d), int(n)
        assert 3 <= n <= 12 and s >= 0 and d >= s + n and d + n <= 40
        assert torch.equal(t[s : s + n], t[d : d + n])
    # variable offsets: no single positional look-back solves the task
    offsets = (batch.dst - batch.src).unique()
    assert len(offsets) > 15
    assert set(batch.length.unique().tolist()) == set(range(3, 13))


def test_repeat_mask_marks_exactly_the_inductively_predictable_positions():
    cfg = InductionConfig()
    batch = sample_batch(cfg, 64, gen(4))
    assert batch.repeat_mask.shape == (64, cfg.seq_len - 1)
    assert torch.equal(batch.repeat_mask.sum(1), batch.length - 1)
    for b in range(64):
        s, d = int(batch.src[b]), int(batch.dst[b])
        t = batch.tokens[b]
        for p in batch.repeat_mask[b].nonzero().flatten().tolist():
            # position p holds a copy of token p-d+s; an induction head predicts the token
            # that followed it, and that is the next token here
            assert t[p] == t[p - d + s] and t[p + 1] == t[p - d + s + 1]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"max_segment": 40}, "max_segment"),
        ({"min_segment": 20, "max_segment": 10}, "min_segment"),
        ({"min_segment": 1}, "min_segment"),
    ],
)
def test_bad_configs_name_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        InductionConfig().override(**kw)


def test_repeated_sequences_repeat_distinct_tokens():
    seqs = repeated_sequences(20, 16, 30, gen(0))
    assert seqs.shape == (20, 32)
    assert torch.equal(seqs[:, :16], seqs[:, 16:])
    assert all(len(row[:16].unique()) == 16 for row in seqs)
    with pytest.raises(ValueError, match="vocab_size"):
        repeated_sequences(2, 40, 30, gen(0))


def perfect_induction_pattern(batch: int, heads: int, period: int, T: int) -> torch.Tensor:
    """All attention of query q >= period on key q - period + 1; elsewhere on the diagonal."""
    pattern = torch.zeros(batch, heads, T, T)
    for q in range(T):
        pattern[:, :, q, q - period + 1 if q >= period else q] = 1.0
    return pattern


def test_prefix_matching_is_one_for_a_perfect_induction_head():
    pattern = perfect_induction_pattern(3, 2, 10, 20)
    torch.testing.assert_close(prefix_matching_score(pattern, 10), torch.ones(2))


def test_prefix_matching_of_uniform_attention_is_about_one_over_position():
    T, period = 20, 10
    uniform = torch.tril(torch.ones(T, T))
    uniform = (uniform / uniform.sum(1, keepdim=True)).expand(2, 3, T, T)
    expected = sum(1 / (q + 1) for q in range(period, T)) / (T - period)  # mean of 1/(q+1)
    torch.testing.assert_close(prefix_matching_score(uniform, period), torch.full((3,), expected))


def test_prefix_matching_mixes_heads_independently():
    T, period = 12, 6
    mixed = perfect_induction_pattern(1, 2, period, T)
    mixed[:, 1] = torch.eye(T)  # head 1 attends to itself only: score 0
    torch.testing.assert_close(prefix_matching_score(mixed, period), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="period"):
        prefix_matching_score(mixed, 12)
    with pytest.raises(ValueError, match=r"\(B, H, T, T\)"):
        prefix_matching_score(mixed[0], period)


def test_icl_score_on_a_hand_made_loss_array():
    # positions 0..9; early band = positions 0, 1; late band = positions 7, 8, 9
    losses = torch.tensor([4.0, 4.2, 3.0, 3.0, 3.0, 3.0, 3.0, 1.0, 1.5, 0.5])
    score = icl_score(losses, early_end=2, late_start=7)
    assert score.item() == pytest.approx((1.0 + 1.5 + 0.5) / 3 - (4.0 + 4.2) / 2)  # -3.1
    batched = icl_score(torch.stack([losses, losses.flip(0)]), early_end=2, late_start=7)
    assert batched.shape == (2,) and batched[1].item() == pytest.approx(
        (3.0 + 4.2 + 4.0) / 3 - (0.5 + 1.5) / 2
    )
    with pytest.raises(ValueError, match="early_end"):
        icl_score(losses, early_end=8, late_start=7)


def test_skip_bigram_background_has_the_table_statistics():
    cfg = InductionConfig(
        vocab_size=6, seq_len=40, min_segment=2, max_segment=3, skip_bigram_scale=2.0, table_seed=3
    )
    batch = sample_batch(cfg, 2000, gen(0))
    pos = torch.arange(40)[None, :]
    copied = (pos >= batch.dst[:, None]) & (pos < (batch.dst + batch.length)[:, None])
    counts = torch.zeros(6, 6)
    for t in range(2, 40):  # x_t ~ table[x_{t-2}] wherever the copy overwrote neither
        ok = ~copied[:, t] & ~copied[:, t - 2]
        pairs = (batch.tokens[ok, t - 2], batch.tokens[ok, t])
        counts.index_put_(pairs, torch.ones(int(ok.sum())), accumulate=True)
    empirical = counts / counts.sum(1, keepdim=True)
    table = induction.skip_bigram_table(6, 3, 2.0)
    torch.testing.assert_close(empirical, table, atol=0.02, rtol=0)
    assert (table.max(1).values > 0.3).all()  # far from uniform (1/6) at this scale


def test_zero_scale_gives_uniform_tokens():
    cfg = InductionConfig(
        vocab_size=8, seq_len=32, min_segment=2, max_segment=4, skip_bigram_scale=0.0
    )
    tokens = sample_batch(cfg, 4000, gen(1)).tokens
    freq = torch.bincount(tokens.flatten(), minlength=8) / tokens.numel()
    torch.testing.assert_close(freq, torch.full((8,), 1 / 8), atol=0.005, rtol=0)
