"""Modular arithmetic ``a ∘ b = c (mod p)`` (Power et al. 2022; Nanda et al. 2023).

Each example is the token sequence ``[a, b, =]`` (the ``=`` token has id ``p``) and
the label is ``c``; a model is trained on a random fraction of all pairs and tested on
the rest. The split is a seeded permutation of the full table, so it is deterministic
and the two halves are disjoint.

Operations (Power et al. 2022, table 1, for a prime p):
``add`` a+b, ``sub`` a−b (non-commutative), ``mul`` a·b, ``div`` a/b for b ≠ 0,
``cond`` a/b if b is odd else a−b, ``x2_xy_y2`` a²+ab+b², ``x3_xy`` a³+ab (polynomials).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from fmlab.config import Config

Operation = Literal["add", "sub", "mul", "div", "cond", "x2_xy_y2", "x3_xy"]
NEEDS_NONZERO_B = {"div", "cond"}


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


class ModularConfig(Config):
    p: int = Field(59, ge=2, le=2000, description="the modulus (prime for div/cond)")
    op: Operation = "add"
    train_frac: float = Field(0.4, gt=0.0, lt=1.0)
    seed: int = Field(0, description="seed of the train/test split")

    @model_validator(mode="after")
    def _check(self) -> ModularConfig:
        if self.op in NEEDS_NONZERO_B and not is_prime(self.p):
            raise ValueError(f"op={self.op!r} needs a prime modulus; p={self.p} is not prime")
        return self


def apply_op(op: str, a: Tensor, b: Tensor, p: int) -> Tensor:
    """c = a ∘ b mod p, elementwise on int64 tensors."""
    if op == "add":
        return (a + b) % p
    if op == "sub":
        return (a - b) % p
    if op == "mul":
        return (a * b) % p
    if op == "div":
        return (a * _inverse(b, p)) % p
    if op == "cond":
        return torch.where(b % 2 == 1, (a * _inverse(b, p)) % p, (a - b) % p)
    if op == "x2_xy_y2":
        return (a * a + a * b + b * b) % p
    if op == "x3_xy":
        return (a * a * a + a * b) % p
    raise ValueError(f"unknown op {op!r}")


def _inverse(b: Tensor, p: int) -> Tensor:
    """Multiplicative inverse mod a prime p by Fermat's little theorem (b ≠ 0)."""
    table = torch.tensor([pow(int(x), p - 2, p) if x else 0 for x in range(p)])
    return table[b]


@dataclass(frozen=True)
class ModularData:
    """Token sequences (N, 3) and labels (N,) of the train and test halves."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    p: int
    op: str

    @property
    def vocab_size(self) -> int:
        return self.p + 1  # 0..p-1 and the "=" token

    @property
    def seq_len(self) -> int:
        return 3


def all_pairs(cfg: ModularConfig) -> tuple[Tensor, Tensor]:
    """Every valid (a, b) as tokens [a, b, =] (N, 3) with labels (N,), in table order."""
    a, b = torch.meshgrid(torch.arange(cfg.p), torch.arange(cfg.p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    if cfg.op in NEEDS_NONZERO_B:
        keep = b != 0
        a, b = a[keep], b[keep]
    x = torch.stack([a, b, torch.full_like(a, cfg.p)], dim=1)
    return x, apply_op(cfg.op, a, b, cfg.p)


def make_data(cfg: ModularConfig) -> ModularData:
    """The deterministic, disjoint train/test split of the full operation table."""
    x, y = all_pairs(cfg)
    n_train = round(cfg.train_frac * len(y))
    if not 0 < n_train < len(y):
        raise ValueError(f"train_frac={cfg.train_frac} leaves an empty split of {len(y)} pairs")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed))
    tr, te = order[:n_train], order[n_train:]
    return ModularData(x[tr], y[tr], x[te], y[te], cfg.p, cfg.op)
