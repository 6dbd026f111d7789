"""Attacks on a watermarked text that know neither the key nor the green lists.

* :func:`substitute` — replace a fraction of the generated tokens, chosen uniformly
  without replacement, each by a uniformly random *different* token (a blind stand-in for
  Kirchenbauer et al.'s T5 span-replacement attack, §7.1).
* :func:`resample_spans` — "paraphrase-like": rewrite spans of ``span_len`` tokens
  covering a fraction of the text by sampling them afresh from an *unwatermarked* model
  conditioned on the (already rewritten) text before them; the text after a span stays.

For KGW, :func:`expected_green_after_substitution` gives the exact expected green count
after :func:`substitute`, from the text's own colours: a token keeps its colour when
neither it nor its context was replaced; a token whose context was replaced meets a new
green list, green with probability γ; a replaced token under an unchanged context is green
with probability γ for independent (Bernoulli) lists, and for lists of exactly γ|V|
tokens (γ|V| - 1)/(|V| - 1) if the old one was green, γ|V|/(|V| - 1) if red.
This is exact in expectation over the replaced positions and over keys (fresh green lists),
and under it the z-score shrinks by ≈ (1 - ε)^(h+1) for context width h (Kirchenbauer et
al. §2: with h = 1 one replaced token can flip two colours).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import gammaln

from fmlab.watermark.generate import NextLogprobs


def _choose(n_rows: int, n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(n_rows, n) bool with exactly ``k`` True per row, uniformly without replacement."""
    order = torch.rand(n_rows, n, generator=generator).argsort(dim=1)
    mask = torch.zeros(n_rows, n, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask


def substitute(
    tokens: torch.Tensor, start: int, fraction: float, vocab_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens with ``round(fraction · n)`` of the ``n`` generated ones replaced; also the
    (B, n) mask of replaced positions."""
    out = tokens.clone()
    gen = out[:, start:]
    n = gen.shape[1]
    k = round(fraction * n)
    mask = _choose(gen.shape[0], n, k, generator)
    shift = torch.randint(1, vocab_size, gen.shape, generator=generator)
    out[:, start:] = torch.where(mask, (gen + shift) % vocab_size, gen)
    return out, mask


def resample_spans(
    tokens: torch.Tensor,
    start: int,
    fraction: float,
    span_len: int,
    next_logprobs: NextLogprobs,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewrite ``round(fraction · n / span_len)`` random non-overlapping spans of every
    text (span slots aligned to ``span_len``) with the unwatermarked model; the (B, n) mask
    of rewritten positions comes back too."""
    out = tokens.clone()
    B, L = out.shape
    n = L - start
    slots = n // span_len
    k = min(slots, round(fraction * n / span_len))
    chosen = _choose(B, slots, k, generator)
    mask = torch.zeros(B, n, dtype=torch.bool)
    mask[:, : slots * span_len] = chosen.repeat_interleave(span_len, dim=1)
    for i in range(n):
        rows = mask[:, i]
        if not rows.any():
            continue
        t = start + i
        lp = next_logprobs(out[rows, :t])
        out[rows, t] = torch.multinomial(lp.double().exp(), 1, generator=generator)[:, 0]
    return out, mask


def _log_comb(n: np.ndarray, k: int) -> np.ndarray:
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        out = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    return np.where(n >= k, out, -np.inf)


def expected_green_after_substitution(
    flags: np.ndarray,
    k: int,
    context_width: int,
    gamma: float,
    vocab_size: int | None = None,
) -> np.ndarray:
    """Expected green count per row after :func:`substitute` of ``k`` of the ``n``
    generated tokens, each of which is scored (no dedupe); ``flags`` (B, n) are their
    colours before (1 green, 0 red). ``vocab_size`` for green lists of fixed size
    ``γ|V|``; None for independent Bernoulli(γ) colours. See the module docstring."""
    flags = np.asarray(flags, dtype=float)
    n = flags.shape[1]
    c = np.minimum(np.arange(n), context_width)  # context tokens inside the generated part
    log_total = _log_comb(np.array(n), k)
    keep_ctx = np.exp(_log_comb(n - c, k) - log_total)  # context untouched
    keep_all = np.exp(_log_comb(n - c - 1, k) - log_total)  # context and token untouched
    own_only = keep_ctx - keep_all  # token replaced, context untouched
    if vocab_size is None:
        p_replaced = np.full_like(flags, gamma)
    else:
        green_size = round(gamma * vocab_size)
        p_replaced = np.where(
            flags > 0.5, (green_size - 1) / (vocab_size - 1), green_size / (vocab_size - 1)
        )
    expected = keep_all * flags + own_only * p_replaced + (1 - keep_ctx) * gamma
    return expected.sum(1)
