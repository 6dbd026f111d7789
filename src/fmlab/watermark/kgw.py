"""KGW: the green-list watermark of Kirchenbauer et al. 2023 ("A Watermark for Large
Language Models", ICML; arXiv 2301.10226), their Algorithm 2 (soft red list).

Generation: before token t, the previous token(s) and a key seed a pseudo-random green
list covering a fraction γ of the vocabulary; ``δ`` is added to the green logits before
sampling. Detection counts the green tokens ``G`` among the ``T`` scored ones and
computes ``z = (G - γT) / sqrt(Tγ(1-γ))``.

Two seedings:

* ``lefthash`` — exactly ``transformers``' ``WatermarkLogitsProcessor`` (seeding scheme
  "lefthash"): ``torch.Generator().manual_seed(key · x_{t-1} mod (2^64 - 1))``, green list
  = the first ``int(γ|V|)`` entries of ``torch.randperm(|V|)``. Equality with
  transformers' processor and detector is tested (tests/unit/watermark). Its flaw: for
  ``x_{t-1} = 0`` the seed is 0 whatever the key, so the green list after token 0 is
  public; harmless where token 0 is rare, not on a language where it is common.
* ``keyed`` (the default) — the green list after context ``c`` is ``{i : π(i) < int(γ|V|)}``
  for a keyed pseudo-random permutation ``π`` of the vocabulary seeded by (key, last
  ``context_width`` tokens) (:func:`fmlab.watermark.prf.permute`): exactly ``int(γ|V|)``
  green tokens as in the paper, every context depends on the key, any context width, and
  a detector tests one token with a few hashes instead of drawing a permutation of the
  whole vocabulary.

Departures from ``transformers``' detector, both deliberate: γ in the z-score is the
exact green probability (``int(γ|V|)/|V|`` for lefthash: transformers uses the nominal γ,
which biases z when γ|V| is not an integer), and the p-value reported is the exact
binomial tail beside the normal one (:mod:`fmlab.watermark.detect`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from fmlab.watermark import prf
from fmlab.watermark.detect import (
    FPR_PAPER,
    Detection,
    binomial_test,
    min_tokens_binomial,
    scored_mask,
)

_CHUNK = 2**22  # hashed elements per block when building green rows
_CACHE_BYTES = 2**26  # lefthash green lists kept (bit-packed)


@dataclass(frozen=True)
class KGW:
    """The scheme's public settings; the key is passed to each call (one per text)."""

    vocab_size: int
    gamma: float = 0.25
    delta: float = 2.0
    seeding: Literal["keyed", "lefthash"] = "keyed"
    context_width: int = 1
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    name: ClassVar[str] = "kgw"

    def __post_init__(self) -> None:
        if not 0 < self.gamma < 1:
            raise ValueError(f"gamma must lie in (0, 1), got {self.gamma}")
        if not 1 <= self.green_size < self.vocab_size:
            raise ValueError(
                f"int(gamma · vocab_size) = {self.green_size} green tokens: need between 1 "
                f"and {self.vocab_size - 1}"
            )
        if self.seeding not in ("keyed", "lefthash"):
            raise ValueError(f"seeding must be keyed or lefthash, got {self.seeding!r}")
        if self.context_width < 1:
            raise ValueError(f"context_width must be >= 1, got {self.context_width}")
        if self.seeding == "lefthash" and self.context_width != 1:
            raise ValueError(
                "lefthash hashes the previous token only (as transformers does); use "
                "seeding='keyed' for a wider context"
            )

    @property
    def green_size(self) -> int:
        """lefthash's list size, ``int(γ|V|)`` (transformers' rounding)."""
        return int(self.vocab_size * self.gamma)

    @property
    def gamma_exact(self) -> float:
        """The probability that a token is green without a watermark: ``int(γ|V|) / |V|``."""
        return self.green_size / self.vocab_size

    # ---- green lists ------------------------------------------------------------------

    def green_rows(self, keys: Any, contexts: Any) -> np.ndarray:
        """(N, V) bool green lists for ``keys`` (N,) or one key and ``contexts`` (N, h)
        — the last ``context_width`` tokens before each position."""
        contexts = np.asarray(contexts, dtype=np.int64).reshape(len(contexts), -1)
        contexts = contexts[:, contexts.shape[1] - self.context_width :]
        keys = np.broadcast_to(prf.as_keys(keys), (contexts.shape[0],))
        if self.seeding == "keyed":
            out = np.empty((len(keys), self.vocab_size), dtype=bool)
            step = max(1, _CHUNK // self.vocab_size)
            vocab = np.arange(self.vocab_size)[None, :]
            for i in range(0, len(keys), step):
                s = prf.seeds(keys[i : i + step], contexts[i : i + step], prf.TAG_KGW)
                ranks = prf.permute(s[:, None], vocab, self.vocab_size)
                out[i : i + step] = ranks < self.green_size
            return out
        return np.stack(
            [self._lefthash_row(int(k), int(c[-1])) for k, c in zip(keys, contexts, strict=True)]
        )

    def _lefthash_row(self, key: int, prev: int) -> np.ndarray:
        """transformers' ``WatermarkLogitsProcessor._get_greenlist_ids`` (lefthash), kept
        bit-packed in a cache of at most ~64 MB."""
        packed = self._cache.get((key, prev))
        if packed is None:
            gen = torch.Generator().manual_seed((key * prev) % (2**64 - 1))
            perm = torch.randperm(self.vocab_size, generator=gen)[: self.green_size]
            row = np.zeros(self.vocab_size, dtype=bool)
            row[perm.numpy()] = True
            if (len(self._cache) + 1) * self.vocab_size > 8 * _CACHE_BYTES:
                self._cache.clear()
            packed = self._cache[(key, prev)] = np.packbits(row)
        return np.unpackbits(packed, count=self.vocab_size).astype(bool)

    # ---- generation -------------------------------------------------------------------

    def bias(self, logits: torch.Tensor, ids: torch.Tensor, keys: Any) -> torch.Tensor:
        """Logits ``(B, V)`` after position ``ids`` ``(B, t)``: ``+δ`` on the green list."""
        green = self.green_rows(keys, ids[:, -self.context_width :].cpu().numpy())
        mask = torch.from_numpy(green).to(logits.device)
        return logits + self.delta * mask.to(logits.dtype)

    def sample(
        self, ids: torch.Tensor, logprobs: torch.Tensor, keys: Any, generator: torch.Generator
    ) -> torch.Tensor:
        """Next tokens ``(B,)`` drawn from the biased distribution (from ``generator``)."""
        probs = self.bias(logprobs.double(), ids, keys).softmax(-1)
        return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(ids.device)

    # ---- detection --------------------------------------------------------------------

    def green_flags(self, ids: Any, keys: Any) -> np.ndarray:
        """(B, L) float: 1 green, 0 red, NaN where there is no full context yet."""
        ids = np.asarray(ids, dtype=np.int64)
        B, L = ids.shape
        h = self.context_width
        out = np.full((B, L), np.nan)
        if h >= L:
            return out
        keys = np.repeat(np.broadcast_to(prf.as_keys(keys), (B,)), L - h)
        ctx = np.lib.stride_tricks.sliding_window_view(ids, h, axis=1)[:, : L - h].reshape(-1, h)
        tokens = ids[:, h:].reshape(-1)
        if self.seeding == "keyed":  # a few hashes per token
            ranks = prf.permute(prf.seeds(keys, ctx, prf.TAG_KGW), tokens, self.vocab_size)
            out[:, h:] = (ranks < self.green_size).reshape(B, L - h)
            return out
        table = np.stack([keys.view(np.int64), ctx[:, -1]], axis=1)
        unique, inverse = np.unique(table, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
        flags = np.empty(len(tokens))
        for j, (key, prev) in enumerate(unique):  # one permutation per distinct context
            where = order[bounds[j] : bounds[j + 1]]
            flags[where] = self._lefthash_row(int(np.uint64(key)), int(prev))[tokens[where]]
        out[:, h:] = flags.reshape(B, L - h)
        return out

    def detect_batch(
        self,
        ids: Any,
        keys: Any,
        start: int | np.ndarray = 0,
        *,
        dedupe: bool = True,
        lengths: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Detection of every row of ``ids`` (B, L) with its key: arrays ``n``, ``green``,
        ``z``, ``p_value``, ``p_normal`` (B,), and ``flags``/``scored`` (B, L)."""
        ids = np.asarray(ids, dtype=np.int64)
        flags = self.green_flags(ids, keys)
        scored = scored_mask(ids, start, self.context_width, dedupe=dedupe, lengths=lengths)
        n = scored.sum(1)
        green = np.where(scored, np.nan_to_num(flags), 0.0).sum(1)
        return {"flags": flags, "scored": scored, "n": n, "green": green} | binomial_test(
            green, n, self.gamma_exact
        )

    def detect(
        self,
        ids: Any,
        key: int,
        start: int = 0,
        *,
        dedupe: bool = True,
        fpr: float = FPR_PAPER,
    ) -> Detection:
        """One text (1-D ids); the first ``start`` tokens (the prompt) are not scored."""
        ids = np.asarray(ids, dtype=np.int64).reshape(1, -1)
        r = self.detect_batch(ids, key, start, dedupe=dedupe)
        per_token = [
            float(f) if s else None for f, s in zip(r["flags"][0], r["scored"][0], strict=True)
        ]
        n = int(r["n"][0])
        return Detection(
            scheme=self.name,
            n_tokens=ids.shape[1],
            n_scored=n,
            statistic=float(r["green"][0]),
            expected=self.gamma_exact * n,
            z=float(r["z"][0]),
            p_value=float(r["p_value"][0]),
            p_normal=float(r["p_normal"][0]),
            min_tokens=min_tokens_binomial(self.gamma_exact, fpr),
            fpr=fpr,
            per_token=per_token,
        )
