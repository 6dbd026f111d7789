"""Causal multi-head softmax attention (Vaswani et al. 2017), optionally windowed."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from fmlab.models.layers import HookPoint, Linear
from fmlab.models.mixers.base import MixerConfig, register_mixer


class AttentionConfig(MixerConfig):
    kind: Literal["attention"] = "attention"
    window: int | None = Field(None, ge=1, description="attend to the last `window` keys only")


@register_mixer(AttentionConfig)
class Attention(nn.Module):
    """Softmax attention with H heads of width d_head; the pattern is a hook site.

    ``window`` limits each query to the ``window`` most recent keys (sliding-window
    attention); ``None`` is full causal attention.
    """

    def __init__(self, cfg, generator: torch.Generator):
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.head_dim
        self.window = cfg.mixer.window
        inner = self.n_heads * self.d_head
        s = cfg.init_scale
        self.w_q = Linear(cfg.d_model, inner, generator, bias=cfg.bias, init_scale=s)
        # No key bias: softmax is invariant to the q·b_k it adds, so its gradient is
        # exactly zero and Adam would only move it by rounding noise.
        self.w_k = Linear(cfg.d_model, inner, generator, bias=False, init_scale=s)
        self.w_v = Linear(cfg.d_model, inner, generator, bias=cfg.bias, init_scale=s)
        self.w_o = Linear(inner, cfg.d_model, generator, bias=cfg.bias, init_scale=s)
        self.hook_pattern = HookPoint()  # (B, H, T_query, T_key) attention probabilities

    def state_size(self, seq_len: int) -> int:
        """Numbers cached per sequence for generation: keys and values of every position
        (of the last ``window`` positions with a sliding window)."""
        window = seq_len if self.window is None else min(self.window, seq_len)
        return 2 * window * self.n_heads * self.d_head

    def flops_per_token(self, seq_len: int) -> float:
        """Forward FLOPs per token: four D×(H·d_head) projections, then scores and the
        weighted sum over the keys a query sees, (T + 1) / 2 on average when causal."""
        inner = self.n_heads * self.d_head
        d_model = self.w_q.weight.shape[0]
        seen = [min(t + 1, self.window or seq_len) for t in range(seq_len)]
        return 2 * 4 * d_model * inner + 2 * 2 * inner * sum(seen) / seq_len

    def forward(self, x: Tensor, *, last_only: bool = False) -> Tensor:
        B, T, _ = x.shape
        H, dh = self.n_heads, self.d_head
        xq = x[:, -1:] if last_only else x
        Tq = xq.shape[1]
        q = self.w_q(xq).view(B, Tq, H, dh).transpose(1, 2)  # (B, H, Tq, dh)
        k = self.w_k(x).view(B, T, H, dh).transpose(1, 2)  # (B, H, T, dh)
        v = self.w_v(x).view(B, T, H, dh).transpose(1, 2)  # (B, H, T, dh)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)  # (B, H, Tq, T)
        scores = scores.masked_fill(~self._allowed(Tq, T, x.device), float("-inf"))
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        z = (pattern @ v).transpose(1, 2).reshape(B, Tq, H * dh)  # (B, Tq, H·dh)
        return self.w_o(z)

    def _allowed(self, Tq: int, T: int, device: torch.device) -> Tensor:
        q_pos = torch.arange(T - Tq, T, device=device)[:, None]  # absolute query positions
        k_pos = torch.arange(T, device=device)[None, :]
        allowed = k_pos <= q_pos
        if self.window is not None:
            allowed &= k_pos > q_pos - self.window
        return allowed  # (Tq, T)
