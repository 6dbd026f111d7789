"""Sequences with a repeated random segment, and the two induction-head measurements.

Olsson et al. (2022, "In-context Learning and Induction Heads") tie in-context learning
to *induction heads*: attention heads that, at a token ``A``, attend to the token that
followed an earlier occurrence of ``A`` and copy it ("[A][B] … [A] → [B]"). This module
makes data on which only that predicts the repeated tokens exactly, and measures the
mechanism:

* :func:`sample_batch` — random tokens in which one random segment (length
  ``min_segment``..``max_segment``) is copied to a later random position. Offsets vary,
  so no fixed positional look-back predicts the copy; only matching the previous token
  does. ``repeat_mask`` marks the predictions an induction head can make.
* the background tokens are uniform, or (``skip_bigram_scale > 0``) drawn from a fixed
  random *skip-bigram* source, ``x_{t+1} ~ softmax(scale · S[x_{t-1}])``: the token
  before the current one carries a little information, as it does in natural text. A
  previous-token head is then worth a little on its own, which is what lets the
  induction circuit (previous-token head + prefix-matching head) form. Measured with
  the ``induction-heads`` quick setting (docs/icl.md): on uniform tokens 2-layer models
  learned a positional "bigram memory" instead (pairs of layer-0 heads reading fixed,
  adjacent earlier positions; best prefix-matching score 0.14); at scale 2 they
  attended two tokens past the previous occurrence, exploiting the source's own
  correlations (score 0.02); at scale 0.5 (0.12 nats of structure) a prefix-matching
  head formed (0.03 → 0.77 within ~200 steps).
* :func:`repeated_sequences` — Olsson et al.'s probe: a random sequence (no token
  twice) followed by itself.
* :func:`prefix_matching_score` — per head, the mean attention from each token of the
  second copy to the token right after its previous occurrence (1 for a perfect
  induction head, about 1/position for uniform attention).
* :func:`icl_score` — Olsson et al.'s in-context learning score: loss late in the
  context minus loss early in it (their token 500 minus token 50); negative means the
  model uses its context.

Loss positions: a model reading tokens ``0..T-2`` predicts tokens ``1..T-1``; position
``p`` of a loss array holds the loss of predicting token ``p + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from pydantic import Field, model_validator
from torch import Tensor

from fmlab.config import Config


class InductionConfig(Config):
    """Random token sequences with one segment repeated later in the same sequence."""

    vocab_size: int = Field(64, ge=2, le=2**24)
    seq_len: int = Field(64, ge=4)
    min_segment: int = Field(8, ge=2, description="shortest repeated segment")
    max_segment: int = Field(32, ge=2, description="longest repeated segment")
    skip_bigram_scale: float = Field(
        0.5, ge=0, description="logit scale of the skip-bigram background; 0 = uniform tokens"
    )
    table_seed: int = Field(0, description="seed of the fixed skip-bigram table S")

    @model_validator(mode="after")
    def _check(self) -> InductionConfig:
        if self.min_segment > self.max_segment:
            raise ValueError(
                f"min_segment ({self.min_segment}) must be <= max_segment ({self.max_segment})"
            )
        if 2 * self.max_segment > self.seq_len:
            raise ValueError(
                f"two copies of max_segment ({self.max_segment}) must fit in "
                f"seq_len ({self.seq_len}); use max_segment <= {self.seq_len // 2}"
            )
        return self


@dataclass(frozen=True)
class InductionBatch:
    """``tokens (B, T)``; the segment ``src..src+length-1`` is copied to ``dst..``;
    ``repeat_mask (B, T-1)`` is True at the loss positions inside the copy that an
    induction head can predict (the copy's first token cannot be)."""

    tokens: Tensor
    src: Tensor  # (B,)
    dst: Tensor  # (B,)
    length: Tensor  # (B,)
    repeat_mask: Tensor


def sample_batch(
    cfg: InductionConfig, batch_size: int, generator: torch.Generator
) -> InductionBatch:
    """Draw ``batch_size`` sequences: tokens, then segment lengths, sources, destinations.

    The draw order is fixed (tokens, segments, then the skip-bigram chain), so one
    generator state gives bit-identical batches. The source start is uniform over the
    places that leave room for a later copy, the destination uniform over the places
    after the source's end.
    """
    B, T, V = batch_size, cfg.seq_len, cfg.vocab_size
    tokens = torch.randint(0, V, (B, T), generator=generator)
    length = torch.randint(cfg.min_segment, cfg.max_segment + 1, (B,), generator=generator)
    src = (torch.rand(B, generator=generator) * (T - 2 * length + 1)).long()  # src + 2L <= T
    room = T - length - (src + length) + 1  # destinations dst in [src + L, T - L]
    dst = src + length + (torch.rand(B, generator=generator) * room).long()
    if cfg.skip_bigram_scale > 0:
        probs = skip_bigram_table(V, cfg.table_seed, cfg.skip_bigram_scale)  # (V, V)
        for t in range(2, T):  # tokens 0 and 1 stay uniform
            tokens[:, t] = torch.multinomial(probs[tokens[:, t - 2]], 1, generator=generator)[:, 0]
    pos = torch.arange(T)[None, :]  # (1, T)
    in_copy = (pos >= dst[:, None]) & (pos < (dst + length)[:, None])  # (B, T)
    from_idx = torch.where(in_copy, pos - dst[:, None] + src[:, None], pos)
    tokens = tokens.gather(1, from_idx)  # the source region itself is unchanged
    p = torch.arange(T - 1)[None, :]  # loss position p predicts token p + 1
    repeat_mask = (p >= dst[:, None]) & (p <= (dst + length - 2)[:, None])
    return InductionBatch(tokens, src, dst, length, repeat_mask)


@lru_cache(maxsize=4)
def skip_bigram_table(vocab_size: int, seed: int, scale: float) -> Tensor:
    """``P(x_{t+1} = c | x_{t-1} = a)`` as a ``(V, V)`` row-stochastic table: the softmax of
    ``scale`` × a fixed standard-normal matrix (its own generator, so the source is the
    same for every batch and run)."""
    logits = torch.randn(vocab_size, vocab_size, generator=torch.Generator().manual_seed(seed))
    return torch.softmax(scale * logits, dim=1)


def eval_batch(cfg: InductionConfig, n: int, seed: int) -> InductionBatch:
    """A fixed evaluation set from its own generator (independent of training)."""
    return sample_batch(cfg, n, torch.Generator().manual_seed(seed))


def repeated_sequences(
    n: int, half_len: int, vocab_size: int, generator: torch.Generator
) -> Tensor:
    """``(n, 2·half_len)``: ``half_len`` distinct random tokens, then the same again.

    Distinct tokens make "the previous occurrence" of every token in the second half
    unique: it lies exactly ``half_len`` positions back.
    """
    if half_len > vocab_size:
        raise ValueError(
            f"half_len ({half_len}) distinct tokens need vocab_size >= half_len "
            f"(got vocab_size={vocab_size})"
        )
    first = torch.rand(n, vocab_size, generator=generator).argsort(dim=1)[:, :half_len]
    return torch.cat([first, first], dim=1)


def prefix_matching_score(pattern: Tensor, period: int) -> Tensor:
    """Mean attention to "the token after the previous occurrence", per head: ``(H,)``.

    ``pattern (B, H, T, T)`` (query, key) on sequences that repeat with ``period``
    (:func:`repeated_sequences` with ``half_len = period``). Query ``q >= period`` has
    its previous occurrence at ``q - period``, so an induction head attends to key
    ``q - period + 1`` (Olsson et al. 2022, "prefix matching"). Averaged over the
    queries ``period..T-1`` and the batch.
    """
    if pattern.ndim != 4 or pattern.shape[-1] != pattern.shape[-2]:
        raise ValueError(f"pattern must be (B, H, T, T), got {tuple(pattern.shape)}")
    T = pattern.shape[-1]
    if not 1 <= period < T:
        raise ValueError(f"period must be in [1, {T - 1}] for T={T}, got {period}")
    q = torch.arange(period, T)
    return pattern[:, :, q, q - period + 1].mean(dim=(0, 2))  # (H,)


def icl_score(losses: Tensor, *, early_end: int, late_start: int, early_start: int = 0) -> Tensor:
    """Mean loss at positions ``>= late_start`` minus at positions ``early_start..early_end-1``.

    ``losses (..., P)`` per loss position (position ``p`` predicts token ``p + 1``);
    returns ``(...)``. Olsson et al. use token 500 minus token 50 of 8192-token contexts;
    here the positions are bands scaled to the context. Negative = in-context learning.
    """
    P = losses.shape[-1]
    if not 0 <= early_start < early_end <= late_start < P:
        raise ValueError(
            f"need 0 <= early_start < early_end <= late_start < {P} (positions), got "
            f"early_start={early_start}, early_end={early_end}, late_start={late_start}"
        )
    early = losses[..., early_start:early_end].mean(-1)
    return losses[..., late_start:].mean(-1) - early
