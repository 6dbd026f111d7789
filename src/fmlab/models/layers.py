"""Small building blocks shared by fmlab's own models: hook points, init, MLP, norms.

Stacked execution. A module whose class sets ``stacked_ok = True`` also runs with every
parameter carrying a leading member dimension K (the K models of a batched ensemble,
:class:`fmlab.train.ensemble.Ensemble`) on inputs with that leading dimension: a
stacked weight (K, d_in, d_out) turns each projection into one batched matmul. It
reads the mode from its own weights' rank, so the plain path is untouched. An ensemble
of a model built only from such modules runs natively; any other model runs under
``torch.func.vmap``, whose per-operation cost made launch-bound steps ~40% slower.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class HookPoint(nn.Module):
    """Identity module marking a canonical activation site (``blocks.0.attn_out`` …).

    Forward hooks registered on it by :mod:`fmlab.hooks` can read the activation or
    replace it (activation patching); without hooks it costs one Python call.
    """

    stacked_ok = True  # see STACKED below

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

    stacked_ok = True

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
        if self.weight.dim() == 3:  # stacked: (K, d_in, d_out), x (K, …, d_in)
            K, _, d_out = self.weight.shape
            flat = torch.baddbmm(self.bias.unsqueeze(1), x.reshape(K, -1, x.shape[-1]), self.weight)
            return flat.view(*x.shape[:-1], d_out)
        if vmapped(x):  # vmap splits addmm into a scaled bias, a matmul and an add
            return project(x, self.weight) + self.bias
        flat = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)  # bias fused
        return flat.view(*x.shape[:-1], self.weight.shape[-1])


def project(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight`` with x flattened to 2-D first: one (N·T, d_in) × (d_in, d_out)
    matmul. Under ``torch.func.vmap`` (ensembles) a 3-D ``x`` against a batched weight
    would otherwise become N·T tiny matmuls. A stacked weight (K, d_in, d_out) takes x of
    shape (K, …, d_in): one batched matmul."""
    if weight.dim() == 3:
        flat = torch.bmm(x.reshape(weight.shape[0], -1, x.shape[-1]), weight)
        return flat.view(*x.shape[:-1], weight.shape[-1])
    return (x.reshape(-1, x.shape[-1]) @ weight).view(*x.shape[:-1], weight.shape[-1])


def vmapped(x: Tensor) -> bool:
    """Inside ``torch.func.vmap`` (a batched ensemble), where some fused kernels have no
    batching rule or a slow one and a plainer formulation batches better."""
    try:
        from torch._C._functorch import is_batchedtensor
    except ImportError:  # a torch without functorch internals: assume not
        return False
    return bool(is_batchedtensor(x))


ACTIVATIONS = {"relu": nn.functional.relu, "gelu": nn.functional.gelu}


class MLP(nn.Module):
    """Position-wise feed-forward: d_model → d_mlp → d_model."""

    stacked_ok = True

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


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters and state dict) that also runs stacked."""

    stacked_ok = True

    def forward(self, x: Tensor) -> Tensor:
        if self.weight is None or self.weight.dim() == 1:
            return super().forward(x)
        shape = (self.weight.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)  # (K, 1…, D)
        out = F.layer_norm(x, self.normalized_shape, None, None, self.eps)
        out = out * self.weight.view(shape)
        return out if self.bias is None else out + self.bias.view(shape)


# Modules from torch that run stacked as they are (no parameters of their own).
STACKED = (nn.Identity, nn.ModuleList, nn.ModuleDict)


def runs_stacked(module: nn.Module) -> bool:
    """Whether ``module`` and everything in it supports stacked execution."""
    return all(getattr(m, "stacked_ok", False) or type(m) in STACKED for m in module.modules())


def make_norm(kind: str, d_model: int) -> nn.Module:
    """Pre-norm layer: ``layernorm`` or ``none`` (Nanda et al.'s grokking model has none)."""
    if kind == "layernorm":
        return LayerNorm(d_model)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; allowed: layernorm, none")
