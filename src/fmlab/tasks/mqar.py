"""Multi-query associative recall, MQAR (Arora et al. 2023, "Zoology: Measuring and
improving recall in efficient language models", §3).

A sequence first lists ``n_pairs`` key–value pairs, then asks for the keys again later
on; at each repeated key the model must output the value that followed it:

    position  0  1  2  3  | 4  5  6  7  8  9 10 11
    tokens    k1 v1 k2 v2 | 0  0  k2 0  0  0  k1 0        (random_non_queries=False)
    labels    -  -  -  -  | -  -  v2 -  -  -  v1 -        (- = IGNORE, not scored)

As in Zoology's generator (``zoology/data/associative_recall.py``): keys are distinct
tokens from ``1 … V/2 − 1``, values distinct tokens from ``V/2 … V − 1``, token 0 fills the
gaps; the queries sit on even offsets of the second part, at gaps drawn without replacement
with probability ∝ a·g^(a−1) (``power_a`` = 0.01: mostly near the start, the power law
of repeated bigrams in text); ``random_non_queries`` replaces the filler by uniform
tokens. Accuracy counts query positions only.

The train and test sets are generated from two independent streams of ``seed``
(``numpy.random.SeedSequence(seed).spawn(2)``), so they are deterministic and differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import Tensor

from fmlab.config import Config
from fmlab.limits import check_memory

IGNORE = -100  # label of positions that are not queries (torch's cross-entropy default)
_BLOCK = 4096  # examples generated at once: bounds the (examples × vocab) sampling table


class MQARConfig(Config):
    vocab_size: int = Field(
        8192, ge=4, le=2**24, description="V: keys from 1…V/2−1, values from V/2…V−1"
    )
    seq_len: int = Field(64, ge=4, description="T (even)")
    n_pairs: int = Field(4, ge=1, description="key–value pairs, each queried once")
    power_a: float = Field(0.01, gt=0, le=1, description="query-gap law ∝ a·g^(a−1); 1 = uniform")
    random_non_queries: bool = Field(False, description="fill gaps with random tokens, not 0")
    n_train: int = Field(100_000, ge=1)
    n_test: int = Field(3_000, ge=1)
    seed: int = Field(0, description="seed of the train and test sets")

    @model_validator(mode="after")
    def _check(self) -> MQARConfig:
        if self.seq_len % 2:
            raise ValueError(f"seq_len must be even, got {self.seq_len}")
        if 4 * self.n_pairs > self.seq_len:
            raise ValueError(
                f"n_pairs={self.n_pairs} needs seq_len >= 4·n_pairs = {4 * self.n_pairs} "
                f"(pairs, then one query slot in every two positions); got {self.seq_len}"
            )
        if self.n_pairs > self.vocab_size // 2 - 1:
            raise ValueError(
                f"n_pairs={self.n_pairs} distinct keys need vocab_size >= "
                f"{2 * self.n_pairs + 2}; got {self.vocab_size}"
            )
        return self


@dataclass(frozen=True)
class MQARData:
    """Tokens (N, T) int64 and labels (N, T) with IGNORE off the query positions."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    vocab_size: int
    seq_len: int
    n_pairs: int


def _distinct(n: int, k: int, weights: Tensor, generator: torch.Generator) -> Tensor:
    """(n, k) indices drawn without replacement ∝ ``weights`` (sequentially, as numpy's
    ``choice(replace=False, p=…)``), in blocks to bound memory."""
    out = [
        torch.multinomial(weights.expand(min(_BLOCK, n - i), -1), k, generator=generator)
        for i in range(0, n, _BLOCK)
    ]
    return torch.cat(out)


def generate(cfg: MQARConfig, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` MQAR sequences (n, T) and their labels (n, T)."""
    V, T, N = cfg.vocab_size, cfg.seq_len, cfg.n_pairs
    half = V // 2
    keys = 1 + _distinct(n, N, torch.ones(half - 1), generator)  # (n, N) in 1 … V/2 − 1
    values = half + _distinct(n, N, torch.ones(V - half), generator)  # (n, N) in V/2 … V − 1
    space = (T - 2 * N) // 2  # query slots: every other position after the pairs
    g = torch.arange(1, space + 1, dtype=torch.float64)
    gaps = _distinct(n, N, cfg.power_a * g ** (cfg.power_a - 1), generator)  # (n, N)
    x = torch.zeros(n, T, dtype=torch.long)
    x[:, 0 : 2 * N : 2], x[:, 1 : 2 * N : 2] = keys, values
    where = 2 * N + 2 * gaps  # (n, N) query positions
    x.scatter_(1, where, keys)
    y = torch.full((n, T), IGNORE, dtype=torch.long).scatter_(1, where, values)
    if cfg.random_non_queries:
        filler = torch.randint(V, (n, T), generator=generator)
        x = torch.where(x == 0, filler, x)
    return x, y


def make_data(cfg: MQARConfig) -> MQARData:
    """The deterministic train and test sets of ``cfg`` (independent streams of its seed)."""
    rows = cfg.n_train + cfg.n_test  # inputs and labels, int64
    check_memory(f"MQAR data of {rows:,} sequences of {cfg.seq_len}", 2 * 8 * rows * cfg.seq_len)
    train_seed, test_seed = (
        int(s.generate_state(1, dtype=np.uint64)[0] % 2**63)
        for s in np.random.SeedSequence(cfg.seed).spawn(2)
    )
    train = generate(cfg, cfg.n_train, torch.Generator().manual_seed(train_seed))
    test = generate(cfg, cfg.n_test, torch.Generator().manual_seed(test_seed))
    return MQARData(*train, *test, cfg.vocab_size, cfg.seq_len, cfg.n_pairs)


def query_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Accuracy of the argmax at the query positions only; logits (..., V), labels (...)."""
    mask = labels != IGNORE
    if not mask.any():
        raise ValueError("no query positions in labels")
    return (logits.argmax(-1)[mask] == labels[mask]).double().mean().item()
