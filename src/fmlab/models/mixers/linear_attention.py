"""Causal linear attention (Katharopoulos et al. 2020) with the Based feature map.

Softmax attention scores a query against every key, so its state (the KV cache) grows with
the sequence. Replacing ``exp(q·k)`` by a kernel ``φ(q)·φ(k)`` lets the sum over the past
be kept as a fixed-size state (Katharopoulos et al. 2020, "Transformers are RNNs"):

    S_t = S_{t-1} + φ(k_t) v_tᵀ    (F × d_v),    z_t = z_{t-1} + φ(k_t)    (F,)
    y_t = φ(q_t)ᵀ S_t / (φ(q_t)ᵀ z_t + ε)

Feature maps: ``elu`` is elu(x) + 1 (Katharopoulos et al.), F = feature_dim; ``taylor`` is
the 2nd-order Taylor expansion of exp(q·k/√d) used by Based (Arora et al. 2024, "Simple
linear attention language models balance the recall-throughput tradeoff"):
``φ(x) = [1, x/d^¼, vec(x xᵀ)/(√2·√d)]``, so ``φ(q)·φ(k) = 1 + q·k/√d + (q·k)²/(2d)``,
F = 1 + d + d² with d = feature_dim. The state size F·(d_v + 1) per head is the knob
Based turns to trade recall against memory.

Training computes the chunked form: quadratic (masked) inside chunks of ``chunk`` positions,
the recurrent state across chunks — exact, parallel, and O(T·chunk) instead of O(T²).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from fmlab.models.layers import Linear
from fmlab.models.mixers.base import MixerConfig, register_mixer

EPS = 1e-6


def feature_map(x: Tensor, kind: str) -> Tensor:
    """(..., d) → (..., F): ``elu`` (F = d) or ``taylor`` (F = 1 + d + d²)."""
    if kind == "elu":
        return F.elu(x) + 1
    if kind == "taylor":
        d = x.shape[-1]
        x2 = (x[..., :, None] * x[..., None, :]).flatten(-2) / math.sqrt(2 * d)
        return torch.cat([torch.ones_like(x[..., :1]), x / d**0.25, x2], dim=-1)
    raise ValueError(f"unknown feature map {kind!r}; allowed: elu, taylor")


def n_features(kind: str, d: int) -> int:
    return d if kind == "elu" else 1 + d + d * d


def causal_linear_attention(q: Tensor, k: Tensor, v: Tensor, chunk: int = 64) -> Tensor:
    """Chunked causal linear attention on featurised q, k (B, H, T, F) and v (B, H, T, dv)."""
    B, H, T, Fd = q.shape
    C = min(chunk, T)
    pad = (-T) % C  # zero keys/values add nothing; padded queries are cut off below
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    n = (T + pad) // C
    qc, kc = q.view(B, H, n, C, Fd), k.view(B, H, n, C, Fd)
    vc = v.view(B, H, n, C, -1)
    mask = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    scores = (qc @ kc.transpose(-1, -2)).masked_fill(~mask, 0.0)  # (B, H, n, C, C)
    num = scores @ vc  # (B, H, n, C, dv)  within the chunk
    den = scores.sum(-1)  # (B, H, n, C)
    if n > 1:  # the state from all earlier chunks (exclusive prefix sum over chunks)
        kv = kc.transpose(-1, -2) @ vc  # (B, H, n, F, dv)
        ksum = kc.sum(-2)  # (B, H, n, F)
        S = F.pad(kv.cumsum(2)[:, :, :-1], (0, 0, 0, 0, 1, 0))  # (B, H, n, F, dv)
        z = F.pad(ksum.cumsum(2)[:, :, :-1], (0, 0, 1, 0))  # (B, H, n, F)
        num = num + qc @ S
        den = den + (qc @ z[..., None])[..., 0]
    y = num / (den[..., None] + EPS)
    return y.reshape(B, H, n * C, -1)[:, :, :T]


class LinearAttentionConfig(MixerConfig):
    kind: Literal["linear_attention"] = "linear_attention"
    feature_map: Literal["elu", "taylor"] = "taylor"
    feature_dim: int = Field(16, ge=1, description="q/k width per head")


@register_mixer(LinearAttentionConfig)
class LinearAttention(nn.Module):
    """Multi-head causal linear attention; ``feature_dim`` is the q/k width per head."""

    def __init__(self, cfg, generator: torch.Generator):
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.head_dim
        self.kind, self.d_feature = cfg.mixer.feature_map, cfg.mixer.feature_dim
        self.chunk = 64
        H, s = self.n_heads, cfg.init_scale
        self.w_q = Linear(cfg.d_model, H * self.d_feature, generator, bias=False, init_scale=s)
        self.w_k = Linear(cfg.d_model, H * self.d_feature, generator, bias=False, init_scale=s)
        self.w_v = Linear(cfg.d_model, H * self.d_head, generator, bias=cfg.bias, init_scale=s)
        self.w_o = Linear(H * self.d_head, cfg.d_model, generator, bias=cfg.bias, init_scale=s)

    @property
    def n_features(self) -> int:
        return n_features(self.kind, self.d_feature)

    def state_size(self, seq_len: int) -> int:
        """The running sums S (F × d_v) and z (F) of every head, whatever the length."""
        return self.n_heads * self.n_features * (self.d_head + 1)

    def flops_per_token(self, seq_len: int) -> float:
        """Projections, plus one recurrent update and read-out of the F×(d_v+1) state."""
        D, H, dv, f = self.w_q.weight.shape[0], self.n_heads, self.d_head, self.d_feature
        proj = 2 * D * H * (2 * f + 2 * dv)
        return proj + 2 * 2 * H * self.n_features * (dv + 1)

    def _qkv(self, x: Tensor, xq: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, T, _ = x.shape
        H = self.n_heads
        q = self.w_q(xq).view(B, xq.shape[1], H, -1).transpose(1, 2)  # (B, H, Tq, f)
        k = self.w_k(x).view(B, T, H, -1).transpose(1, 2)  # (B, H, T, f)
        v = self.w_v(x).view(B, T, H, self.d_head).transpose(1, 2)  # (B, H, T, dv)
        return feature_map(q, self.kind), feature_map(k, self.kind), v

    def forward(self, x: Tensor, *, last_only: bool = False) -> Tensor:
        B = x.shape[0]
        if last_only:  # the state after the whole sequence, read by the last query
            q, k, v = self._qkv(x, x[:, -1:])
            S = k.transpose(-1, -2) @ v  # (B, H, F, dv)
            z = k.sum(-2)  # (B, H, F)
            y = (q @ S) / ((q @ z[..., None]) + EPS)  # (B, H, 1, dv)
        else:
            q, k, v = self._qkv(x, x)
            y = causal_linear_attention(q, k, v, self.chunk)  # (B, H, T, dv)
        return self.w_o(y.transpose(1, 2).reshape(B, y.shape[2], -1))
