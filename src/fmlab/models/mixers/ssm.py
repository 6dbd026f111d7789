"""A selective state-space layer (Mamba; Gu & Dao 2023) in its chunked "SSD" form (Mamba-2;
Dao & Gu 2024), in pure PyTorch.

Per head h (of H) the layer runs a linear recurrence over a state of d_head × d_state
numbers whose parameters depend on the input at each step ("selective"):

    h_t = exp(Δ_t A_h) · h_{t-1} + Δ_t · x_t B_tᵀ      (d_head × d_state)
    y_t = h_t C_t + D_h · x_t

with Δ_t = softplus(w_Δ·u_t + b_Δ) > 0, A_h < 0, and B_t, C_t ∈ R^{d_state} projected from
the input. The transition is diagonal (a scalar per head times the identity, as in Mamba-2),
so the state expansion ``d_state`` is a real axis: the state carried per sequence is
2·d_model·d_state numbers per layer (plus the short conv's buffer), independent of length.

Why SSD and not Mamba-1's per-(channel, state) decay: with a scalar decay per head the
recurrence has an exact, numerically stable chunked form made of matrix products —
quadratic inside chunks of ``chunk`` steps, the recurrence across chunks (Dao & Gu 2024,
§6) — with every exponent a sum of non-positive terms. A Mamba-1 decay per (channel, state)
forces a (B, T, D, N) tensor through an elementwise scan, which on a CPU is memory-bound and
slower than the step loop it replaces (see ``benchmarks/mixers.py``).

Block layout (Mamba-2): in_proj → [z, x, B, C, Δ]; causal depthwise conv (kernel 4) and
SiLU on [x, B, C]; the SSM; gated RMS norm ``norm(y ⊙ SiLU(z))``; out_proj. Expansion 2.
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
from fmlab.models.short_conv import ShortConv

EXPAND, D_CONV = 2, 4
DT_MIN, DT_MAX = 1e-3, 1e-1  # Mamba's range for the initial step size Δ
A_MIN, A_MAX = 1.0, 16.0  # Mamba-2's range for the initial decay rate -A


def segsum(a: Tensor) -> Tensor:
    """(..., L) → (..., L, L): ``out[i, j] = a_{j+1} + … + a_i`` for j ≤ i, −inf above.

    Summed directly (a masked cumulative sum), never as a difference of prefix sums, so
    it stays exact for long runs of strongly negative log-decays.
    """
    L = a.shape[-1]
    x = a[..., :, None].expand(*a.shape, L)  # x[..., i, j] = a_i
    strict = torch.ones(L, L, dtype=torch.bool, device=a.device).tril(-1)
    out = x.masked_fill(~strict, 0.0).cumsum(-2)
    return out.masked_fill(~strict.logical_or(torch.eye(L, dtype=torch.bool)), -math.inf)


def ssd_scan(x: Tensor, a: Tensor, B: Tensor, C: Tensor, chunk: int = 64) -> tuple[Tensor, Tensor]:
    """The selective scan ``h_t = exp(a_t) h_{t-1} + x_t B_tᵀ``, ``y_t = h_t C_t``.

    x (b, T, H, P) (already scaled by Δ), a (b, T, H) log-decays ≤ 0, B, C (b, T, N).
    Returns y (b, T, H, P) and the final state (b, H, P, N).
    """
    b, T, H, P = x.shape
    N = B.shape[-1]
    L = min(chunk, T)
    pad = (-T) % L  # padded steps come after the end: they change nothing before it
    if pad:
        x, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (x, B, C))
        a = F.pad(a, (0, 0, 0, pad))
    n = (T + pad) // L
    xc = x.view(b, n, L, H, P).permute(0, 3, 1, 2, 4)  # (b, H, n, L, P)
    ac = a.view(b, n, L, H).permute(0, 3, 1, 2)  # (b, H, n, L)
    Bc, Cc = B.view(b, 1, n, L, N), C.view(b, 1, n, L, N)
    a_cum = ac.cumsum(-1)  # (b, H, n, L)
    # 1. inside each chunk: y_i = Σ_{j≤i} (C_i·B_j) exp(a_{j+1..i}) x_j, a masked "attention"
    decay = torch.exp(segsum(ac))  # (b, H, n, L, L)
    y = ((Cc @ Bc.transpose(-1, -2)) * decay) @ xc  # (b, H, n, L, P)
    # 2. the state each chunk leaves behind from its own inputs
    to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, H, n, L)
    chunk_states = (xc * to_end[..., None]).transpose(-1, -2) @ Bc  # (b, H, n, P, N)
    if n == 1:  # one chunk: nothing enters it, and it leaves its own state
        return y.permute(0, 2, 3, 1, 4).reshape(b, L, H, P)[:, :T], chunk_states[:, :, 0]
    # 3. states entering each chunk: the recurrence across chunks, in closed form
    totals = F.pad(a_cum[..., -1], (1, 0))  # (b, H, n + 1)
    across = torch.exp(segsum(totals))  # (b, H, n + 1, n + 1)
    states = F.pad(chunk_states, (0, 0, 0, 0, 1, 0))  # (b, H, n + 1, P, N), zero initial
    states = (across @ states.flatten(-2)).view(b, H, n + 1, P, N)
    # 4. what earlier chunks contribute: C_i · (decayed entering state)
    y = y + (Cc @ states[:, :, :-1].transpose(-1, -2)) * torch.exp(a_cum)[..., None]
    y = y.permute(0, 2, 3, 1, 4).reshape(b, n * L, H, P)[:, :T]
    return y, states[:, :, -1]


def ssd_last_state(x: Tensor, a: Tensor, B: Tensor) -> Tensor:
    """The state after the whole sequence, h_T = Σ_s exp(a_{s+1} + … + a_T) x_s B_sᵀ."""
    a_cum = a.cumsum(1)  # (b, T, H)
    weight = torch.exp(a_cum[:, -1:] - a_cum)  # (b, T, H), exponents ≤ 0 up to rounding
    return torch.einsum("bth,bthp,btn->bhpn", weight, x, B)


class GatedRMSNorm(nn.Module):
    """Mamba-2's ``RMSNorm(y ⊙ SiLU(z))``: keeps the SSM output at unit scale."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        y = y * F.silu(z)
        return y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class SSMConfig(MixerConfig):
    kind: Literal["ssm"] = "ssm"
    d_state: int = Field(16, ge=1, description="state expansion per channel")


@register_mixer(SSMConfig)
class SelectiveSSM(nn.Module):
    """Mamba-2 style selective SSM: H = n_heads heads of width 2·d_model / H, d_state N."""

    def __init__(self, cfg, generator: torch.Generator):
        super().__init__()
        D, N, H = cfg.d_model, cfg.mixer.d_state, cfg.n_heads
        self.d_inner, self.d_state, self.n_heads = EXPAND * D, N, H
        if self.d_inner % H:
            raise ValueError(f"2·d_model={self.d_inner} is not divisible by n_heads={H}")
        self.chunk = 64
        s = cfg.init_scale
        self.in_proj = Linear(D, 2 * self.d_inner + 2 * N + H, generator, bias=False, init_scale=s)
        self.conv = ShortConv(self.d_inner + 2 * N, D_CONV, generator)
        u = torch.rand(H, generator=generator)
        dt = torch.exp(math.log(DT_MIN) + u * (math.log(DT_MAX) - math.log(DT_MIN)))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        a = A_MIN + torch.rand(H, generator=generator) * (A_MAX - A_MIN)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(H))
        self.norm = GatedRMSNorm(self.d_inner)
        self.out_proj = Linear(self.d_inner, D, generator, bias=False, init_scale=s)

    def state_size(self, seq_len: int) -> int:
        """The SSM state (d_inner × d_state) plus the conv's last D_CONV - 1 inputs."""
        return self.d_inner * self.d_state + self.conv.state_size(seq_len)

    def flops_per_token(self, seq_len: int) -> float:
        """Projections and conv, plus one recurrent step: decay, x Bᵀ and h C on the
        (d_inner × d_state) state (the chunked training form costs more per token)."""
        D, Di, N = self.out_proj.weight.shape[1], self.d_inner, self.d_state
        proj = 2 * D * self.in_proj.weight.shape[1] + 2 * Di * D
        return proj + self.conv.flops_per_token(seq_len) + 3 * 2 * Di * N

    def _inputs(self, x: Tensor) -> tuple[Tensor, ...]:
        """(B, T, D) → z (B, T, Di), xs (B, T, H, P) scaled by Δ, log-decay a (B, T, H),
        B, C (B, T, N), and the unscaled xs for the skip term."""
        Bsz, T, _ = x.shape
        Di, N, H = self.d_inner, self.d_state, self.n_heads
        z, xbc, dt = self.in_proj(x).split([Di, Di + 2 * N, H], dim=-1)
        xs, Bm, Cm = F.silu(self.conv(xbc)).split([Di, N, N], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # (B, T, H)
        a = dt * -torch.exp(self.A_log)  # (B, T, H) log-decay per step, < 0
        xs = xs.view(Bsz, T, H, Di // H)
        return z, xs * dt[..., None], a, Bm, Cm, xs

    def forward(self, x: Tensor, *, last_only: bool = False) -> Tensor:  # (B, T, D)
        z, xdt, a, Bm, Cm, xs = self._inputs(x)
        if last_only:
            h = ssd_last_state(xdt, a, Bm)  # (B, H, P, N)
            y = (h @ Cm[:, -1, None, :, None])[..., 0][:, None]  # (B, 1, H, P)
            z, xs = z[:, -1:], xs[:, -1:]
        else:
            y, _ = ssd_scan(xdt, a, Bm, Cm, self.chunk)  # (B, T, H, P)
        y = y + xs * self.D[:, None]
        y = self.norm(y.flatten(-2), z)
        return self.out_proj(y)
