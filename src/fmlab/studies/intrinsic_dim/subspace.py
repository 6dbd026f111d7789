"""Training in a random d-dimensional subspace: θ = θ₀ + P θ_d (Li et al. 2018).

Only θ_d ∈ R^d (started at 0) is trained; θ₀ (the model's weights) and the random
projection P ∈ R^{D×d} are fixed. P is either

* ``dense``: Gaussian entries, each column scaled to unit length (Li et al. 2018 §2) —
  D·d numbers, for small D·d;
* ``fastfood``: the Fastfood transform (Le et al. 2013) that Li et al. use for large
  models and Aghajanyan et al. 2021 use for fine-tuning: P θ_d = (H G Π H B [θ_d; 0])[:D]
  / (‖G‖ √D), with L = 2^⌈log₂ max(D, d)⌉, H the L×L Walsh–Hadamard matrix (applied
  as H_a ⊗ H_b with a·b = L, never stored whole), B a random ±1 diagonal, Π a random
  permutation and G a Gaussian diagonal. Its columns have unit length in expectation,
  like the dense P's;
* ``identity``: P = I (d = D) — training in the subspace is then ordinary training, a
  check of the machinery (tested).

``auto`` takes the dense P while D·d ≤ ``dense_max`` and Fastfood above; the default
limit comes from ``benchmarks/lora.py``, which times both.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call


def hadamard(n: int, dtype=torch.float32) -> Tensor:
    """The n×n Sylvester–Hadamard matrix (n a power of 2), entries ±1."""
    H = torch.ones(1, 1, dtype=dtype)
    while H.shape[0] < n:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    return H


def fwht(x: Tensor, factors: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Unnormalised Walsh–Hadamard transform of the last axis (length L = a·b, a power
    of 2), as H_L = H_a ⊗ H_b: two small matrix products on x viewed as (a, b), which is
    faster on a CPU than log₂ L butterfly passes."""
    L = x.shape[-1]
    if L & (L - 1):
        raise ValueError(f"the Hadamard transform needs a power-of-2 length, got {L}")
    if factors is None:
        k = L.bit_length() - 1
        factors = (hadamard(1 << (k - k // 2), x.dtype), hadamard(1 << (k // 2), x.dtype))
    Ha, Hb = factors
    X = x.reshape(*x.shape[:-1], Ha.shape[0], Hb.shape[0])
    return (Ha @ X @ Hb).reshape(x.shape)


class Dense(nn.Module):
    def __init__(self, D: int, d: int, generator: torch.Generator):
        super().__init__()
        P = torch.randn(D, d, generator=generator)
        self.register_buffer("P", P / P.norm(dim=0, keepdim=True), persistent=False)

    def forward(self, theta: Tensor) -> Tensor:
        return self.P @ theta


class Fastfood(nn.Module):
    def __init__(self, D: int, d: int, generator: torch.Generator):
        super().__init__()
        self.D, self.d = D, d
        self.L = 1 << max(1, math.ceil(math.log2(max(D, d))))
        L = self.L
        self.register_buffer("B", torch.randint(0, 2, (L,), generator=generator) * 2.0 - 1.0,
                             persistent=False)  # fmt: skip
        self.register_buffer("Pi", torch.randperm(L, generator=generator), persistent=False)
        G = torch.randn(L, generator=generator)
        self.register_buffer("G", G, persistent=False)
        k = L.bit_length() - 1
        self.register_buffer("Ha", hadamard(1 << (k - k // 2)), persistent=False)
        self.register_buffer("Hb", hadamard(1 << (k // 2)), persistent=False)
        self.scale = 1.0 / (float(G.norm()) * math.sqrt(D))

    def forward(self, theta: Tensor) -> Tensor:
        x = torch.zeros(self.L, dtype=theta.dtype, device=theta.device)
        x = x.index_copy(0, torch.arange(self.d, device=theta.device), theta)
        H = (self.Ha, self.Hb)
        x = fwht(self.B * x, H)[self.Pi] * self.G
        return fwht(x, H)[: self.D] * self.scale


class Identity(nn.Module):
    def forward(self, theta: Tensor) -> Tensor:
        return theta


def projection(kind: str, D: int, d: int, generator: torch.Generator, dense_max: int) -> nn.Module:
    if kind == "auto":
        kind = "dense" if D * d <= dense_max else "fastfood"
    if kind == "identity":
        if d != D:
            raise ValueError(f"the identity projection needs d = D = {D}; got d = {d}")
        return Identity()
    if kind == "dense":
        return Dense(D, d, generator)
    if kind == "fastfood":
        return Fastfood(D, d, generator)
    raise ValueError(f"unknown projection {kind!r}: auto, dense, fastfood or identity")


class Subspace(nn.Module):
    """``model`` reparameterised as θ₀ + P θ_d; only ``theta`` (θ_d) is a parameter.
    Calling it calls ``model`` with those weights (``torch.func.functional_call``)."""

    def __init__(self, model: nn.Module, d: int, proj: nn.Module):
        super().__init__()
        self.model = model
        for p in model.parameters():
            p.requires_grad_(False)
        named = dict(model.named_parameters())
        self.names = list(named)
        self.shapes = [named[n].shape for n in self.names]
        flat = torch.cat([named[n].detach().reshape(-1) for n in self.names])
        self.register_buffer("theta0", flat.clone(), persistent=False)
        self.proj = proj
        self.theta = nn.Parameter(torch.zeros(d, device=flat.device))

    @property
    def n_params(self) -> int:
        return self.theta0.numel()

    def weights(self) -> dict[str, Tensor]:
        flat = self.theta0 + self.proj(self.theta)
        out, i = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = shape.numel()
            out[name] = flat[i : i + n].view(shape)
            i += n
        return out

    def forward(self, *args, **kwargs):
        return functional_call(self.model, self.weights(), args, kwargs)
