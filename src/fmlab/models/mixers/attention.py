"""Causal multi-head softmax attention (Vaswani et al. 2017), optionally windowed.

It runs on ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels that never
materialise the T×T scores and skip the causal half), except when a hook is attached to
its pattern site (``blocks.{i}.attn.pattern``): then the exact eager path computes the
probabilities, passes them through the hook (which may read or replace them) and uses
them. Batched ensembles (``vmap``) take the eager path too: SDPA has no batching rule.
The two paths agree to float rounding (tested to 1e-5 on outputs and gradients).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from fmlab.models.layers import HookPoint, Linear, vmapped
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

    stacked_ok = True  # leading dimensions beyond the batch pass through (an ensemble's K)

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
        self.eager = False  # True: always materialise the pattern (SDPA otherwise)

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
        *lead, T, _ = x.shape  # lead = (B,), or (K, B) in a stacked ensemble
        H, dh = self.n_heads, self.d_head
        xq = x[..., -1:, :] if last_only else x
        Tq = xq.shape[-2]
        q = self.w_q(xq).view(*lead, Tq, H, dh).transpose(-2, -3)  # (B, H, Tq, dh)
        k = self.w_k(x).view(*lead, T, H, dh).transpose(-2, -3)  # (B, H, T, dh)
        v = self.w_v(x).view(*lead, T, H, dh).transpose(-2, -3)  # (B, H, T, dh)
        if self.hook_pattern._forward_hooks or self.eager or vmapped(x):
            z = self._eager(q, k, v, Tq, T)
        else:  # SDPA's fused kernels take 4-D inputs (5-D falls back to its math path)
            q4, k4, v4 = (t.reshape(-1, *t.shape[-3:]) for t in (q, k, v))
            if self.window is None:  # the last query sees every key: no mask at all
                z = F.scaled_dot_product_attention(q4, k4, v4, is_causal=not last_only and T > 1)
            else:
                mask = self._allowed(Tq, T, x.device)
                z = F.scaled_dot_product_attention(q4, k4, v4, attn_mask=mask)
            z = z.view(*lead, H, Tq, dh)
        z = z.transpose(-2, -3).reshape(*lead, Tq, H * dh)  # (B, Tq, H·dh)
        return self.w_o(z)  # (B, Tq, D)

    def _eager(self, q: Tensor, k: Tensor, v: Tensor, Tq: int, T: int) -> Tensor:
        """Attention with its probabilities materialised — through ``hook_pattern``, so a
        hook can read or patch them. Used whenever a hook is attached there."""
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (B, H, Tq, T)
        if Tq > 1 or self.window is not None:  # the last query alone sees every key
            scores = scores.masked_fill(~self._allowed(Tq, T, q.device), float("-inf"))
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        return pattern @ v  # (B, H, Tq, dh)

    def _allowed(self, Tq: int, T: int, device: torch.device) -> Tensor:
        q_pos = torch.arange(T - Tq, T, device=device)[:, None]  # absolute query positions
        k_pos = torch.arange(T, device=device)[None, :]
        allowed = k_pos <= q_pos
        if self.window is not None:
            allowed &= k_pos > q_pos - self.window
        return allowed  # (Tq, T)
