"""Small building blocks shared by fmlab's own models: hook points, init, MLP, norms."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class HookPoint(nn.Module):
    """Identity module marking a canonical activation site (``blocks.0.attn_out`` …).

    Forward hooks registered on it by :mod:`fmlab.hooks` can read the activation or
    replace it (activation patching); without hooks it costs one Python call.
    """

    def forward(self, x: Tensor) -> Tensor:
        return x


def normal_param(shape: tuple[int, ...], std: float, generator: torch.Generator) -> nn.Parameter:
    """A parameter drawn from N(0, std²) with an explicit generator (no global RNG)."""
    return nn.Parameter(torch.randn(shape, generator=generator) * std)


def zeros_param(shape: tuple[int, ...]) -> nn.Parameter:
    return nn.Parameter(torch.zeros(shape))


def fan_in_std(fan_in: int, scale: float = 1.0) -> float:
    """1/sqrt(fan_in): keeps activations O(1) through a linear map (as in Nanda et al.)."""
    return scale / math.sqrt(fan_in)


class Linear(nn.Module):
    """``x @ W + b`` with W of shape (d_in, d_out), initialised from an explicit generator."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        generator: torch.Generator,
        *,
        bias: bool = True,
        init_scale: float = 1.0,
    ):
        super().__init__()
        self.weight = normal_param((d_in, d_out), fan_in_std(d_in, init_scale), generator)
        self.bias = zeros_param((d_out,)) if bias else None

    def forward(self, x: Tensor) -> Tensor:  # (..., d_in) -> (..., d_out)
        if self.bias is None:
            return project(x, self.weight)
        flat = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)  # bias fused
        return flat.view(*x.shape[:-1], self.weight.shape[-1])


def project(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight`` with x flattened to 2-D first: one (N·T, d_in) × (d_in, d_out)
    matmul. Under ``torch.func.vmap`` (ensembles) a 3-D ``x`` against a batched weight
    would otherwise become N·T tiny matmuls."""
    return (x.reshape(-1, x.shape[-1]) @ weight).view(*x.shape[:-1], weight.shape[-1])


ACTIVATIONS = {"relu": nn.functional.relu, "gelu": nn.functional.gelu}


class MLP(nn.Module):
    """Position-wise feed-forward: d_model → d_mlp → d_model."""

    def __init__(
        self,
        d_model: int,
        d_mlp: int,
        act: str,
        generator: torch.Generator,
        *,
        bias: bool = True,
        init_scale: float = 1.0,
    ):
        super().__init__()
        self.w_in = Linear(d_model, d_mlp, generator, bias=bias, init_scale=init_scale)
        self.w_out = Linear(d_mlp, d_model, generator, bias=bias, init_scale=init_scale)
        self.act = ACTIVATIONS[act]
        self.hook_post = HookPoint()  # (B, T, d_mlp) neuron activations

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, T, D)
        return self.w_out(self.hook_post(self.act(self.w_in(x))))


def make_norm(kind: str, d_model: int) -> nn.Module:
    """Pre-norm layer: ``layernorm`` or ``none`` (Nanda et al.'s grokking model has none)."""
    if kind == "layernorm":
        return nn.LayerNorm(d_model)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; allowed: layernorm, none")
