"""The exponential ("Gumbel") watermark of Aaronson (2022, talk and blog "My AI safety
lecture for UT Effective Altruism"; analysed by Fernandez et al. 2023 and Kuditipudi et
al. 2023).

Generation: the key and the last ``context_width`` tokens seed pseudo-random
``r_1 … r_|V|`` in (0, 1) (:mod:`fmlab.watermark.prf`); the next token is
``argmax_i r_i^(1/p_i)`` = ``argmax_i log(r_i) / p_i``. For one context and a uniformly
random ``r`` this picks token ``i`` with probability exactly ``p_i`` (the Gumbel-max
trick: ``-log(r_i)/p_i`` are independent exponentials of rates ``p_i``, and the smallest
is ``i`` with probability ``p_i / Σp``) — so over keys the text is distributed exactly as
the model's, "distortion-free". Given the key it is deterministic: the same context
always gives the same token, which is why a short context makes texts repeat.

Detection: ``S = Σ_t -log(1 - r_{x_t})`` over the scored tokens. Without the watermark
each term is Exp(1) and ``S ~ Gamma(T, 1)``; with it, tokens with large ``r`` are
preferred and ``S`` grows (Aaronson's score; the exact Gamma tail as in Fernandez et al.
2023 §3). Repeated n-grams repeat their ``r``, so they count once by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from fmlab.watermark import prf
from fmlab.watermark.detect import FPR_PAPER, Detection, gamma_test, min_tokens_gamma, scored_mask


@dataclass(frozen=True)
class Gumbel:
    vocab_size: int
    context_width: int = 4

    name: ClassVar[str] = "gumbel"

    def __post_init__(self) -> None:
        if self.context_width < 1:
            raise ValueError(f"context_width must be >= 1, got {self.context_width}")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {self.vocab_size}")

    def uniforms(self, keys: Any, contexts: Any, tokens: Any | None = None) -> np.ndarray:
        """``r`` for each row's (key, context): (N, V) for the whole vocabulary, or (N,) for
        one ``tokens`` entry per row."""
        contexts = np.asarray(contexts, dtype=np.int64)
        contexts = contexts[:, contexts.shape[1] - self.context_width :]
        s = prf.seeds(
            np.broadcast_to(prf.as_keys(keys), (len(contexts),)), contexts, prf.TAG_GUMBEL
        )
        if tokens is None:
            return prf.uniforms(s, np.arange(self.vocab_size))
        return prf.uniforms(s, np.asarray(tokens, dtype=np.int64)[:, None])[:, 0]

    def choose(self, probs: np.ndarray, r: np.ndarray) -> np.ndarray:
        """``argmax_i log(r_i) / p_i`` per row (tokens with p = 0 are never chosen)."""
        with np.errstate(divide="ignore"):
            keys = np.where(probs > 0, np.log(r) / probs, -np.inf)
        return keys.argmax(-1)

    def sample(
        self, ids: torch.Tensor, logprobs: torch.Tensor, keys: Any, generator: Any = None
    ) -> torch.Tensor:
        """Next tokens ``(B,)``: deterministic given the keys and contexts (no generator)."""
        probs = logprobs.double().softmax(-1).cpu().numpy()
        r = self.uniforms(keys, ids[:, -self.context_width :].cpu().numpy())
        return torch.from_numpy(self.choose(probs, r)).to(ids.device)

    def token_scores(self, ids: Any, keys: Any) -> np.ndarray:
        """(B, L): ``-log(1 - r_{x_t})`` of every token with a full context (NaN before)."""
        ids = np.asarray(ids, dtype=np.int64)
        B, L = ids.shape
        h = self.context_width
        out = np.full((B, L), np.nan)
        if h >= L:
            return out
        keys = np.broadcast_to(prf.as_keys(keys), (B,))
        ctx = np.lib.stride_tricks.sliding_window_view(ids, h, axis=1)[:, : L - h]
        r = self.uniforms(np.repeat(keys, L - h), ctx.reshape(-1, h), ids[:, h:].reshape(-1))
        out[:, h:] = -np.log1p(-r).reshape(B, L - h)
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
        ids = np.asarray(ids, dtype=np.int64)
        scores = self.token_scores(ids, keys)
        scored = scored_mask(ids, start, self.context_width, dedupe=dedupe, lengths=lengths)
        n = scored.sum(1)
        total = np.where(scored, np.nan_to_num(scores), 0.0).sum(1)
        return {"flags": scores, "scored": scored, "n": n, "score": total} | gamma_test(total, n)

    def detect(
        self, ids: Any, key: int, start: int = 0, *, dedupe: bool = True, fpr: float = FPR_PAPER
    ) -> Detection:
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
            statistic=float(r["score"][0]),
            expected=float(n),
            z=float(r["z"][0]),
            p_value=float(r["p_value"][0]),
            p_normal=float(r["p_normal"][0]),
            min_tokens=min_tokens_gamma(fpr),
            fpr=fpr,
            per_token=per_token,
        )
