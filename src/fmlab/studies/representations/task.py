"""The two synthetic languages of the ``representations`` study: a shared lexicon of word
classes, and a class-level Markov chain that the fine-tuning language redraws.

V = K·M tokens are split at random into K classes of M tokens. A sequence's classes
z_0 … z_{T-1} start uniform for the first ``order`` positions and then follow an
order-``order`` Markov chain with transition rows drawn from Dirichlet(α); each token is
uniform within its class. The pre-training and fine-tuning languages share the lexicon
(which tokens form a class) and differ only in the transition table.

Because a token determines its class and tokens are uniform within a class, the
Bayes-optimal next-token loss is exactly H(z_t | previous ``order`` classes) + log M,
averaged over positions with the exact distribution of contexts at each position
(:meth:`ClassMarkov.optimal_loss`), so a model's excess loss is known exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from fmlab.config import Config


class ShiftConfig(Config):
    n_classes: int = Field(8, ge=2, le=64, description="K word classes")
    tokens_per_class: int = Field(8, ge=1, description="M tokens per class")
    order: int = Field(2, ge=1, le=3, description="the next class depends on this many")
    concentration: float = Field(
        0.3, gt=0, description="Dirichlet α of each transition row (small = predictable)"
    )
    seq_len: int = Field(24, ge=4)


@dataclass(frozen=True)
class ClassMarkov:
    members: Tensor  # (K, M) token ids of each class
    transition: Tensor  # (K**order, K) next-class probabilities of each context
    order: int
    seq_len: int

    @property
    def vocab_size(self) -> int:
        return self.members.numel()

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` sequences of ``seq_len`` token ids, (n, T) int64."""
        K, M = self.members.shape
        z = torch.empty(n, self.seq_len, dtype=torch.long)
        z[:, : self.order] = torch.randint(0, K, (n, self.order), generator=generator)
        for t in range(self.order, self.seq_len):
            ctx = torch.zeros(n, dtype=torch.long)
            for j in range(self.order):  # base-K index of (z_{t-order}, …, z_{t-1})
                ctx = ctx * K + z[:, t - self.order + j]
            z[:, t] = torch.multinomial(self.transition[ctx], 1, generator=generator)[:, 0]
        pick = torch.randint(0, M, (n, self.seq_len), generator=generator)
        return self.members[z, pick]  # (n, T)

    def optimal_loss(self) -> float:
        """Expected Bayes-optimal cross-entropy per predicted token (positions 1…T-1)."""
        K, M = self.members.shape
        P = self.transition.double().numpy()  # (S, K)
        S = P.shape[0]
        H = -np.sum(np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0), axis=1)  # (S,)
        successor = (np.arange(S)[:, None] % (K ** (self.order - 1))) * K + np.arange(K)  # (S, K)
        p = np.full(S, 1.0 / S)  # contexts at t = order are uniform
        losses = [math.log(K * M)] * (self.order - 1)  # tokens 1…order-1: uniform, unconditioned
        for _ in range(self.order, self.seq_len):
            losses.append(float(p @ H) + math.log(M))
            nxt = np.zeros(S)
            np.add.at(nxt, successor.ravel(), (p[:, None] * P).ravel())
            p = nxt
        return float(np.mean(losses))


def make_pair(cfg: ShiftConfig, seed: int) -> tuple[ClassMarkov, ClassMarkov]:
    """(pre-training, fine-tuning) languages: one lexicon, two transition tables."""
    K, M = cfg.n_classes, cfg.tokens_per_class
    lex_seed, src_seed, dst_seed = np.random.SeedSequence(seed).spawn(3)
    members = torch.from_numpy(np.random.default_rng(lex_seed).permutation(K * M).reshape(K, M))

    def table(s: np.random.SeedSequence) -> Tensor:
        rows = np.random.default_rng(s).dirichlet(np.full(K, cfg.concentration), K**cfg.order)
        return torch.from_numpy(rows).float()  # (K**order, K)

    return (
        ClassMarkov(members, table(src_seed), cfg.order, cfg.seq_len),
        ClassMarkov(members, table(dst_seed), cfg.order, cfg.seq_len),
    )
