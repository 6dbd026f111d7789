"""A gated long convolution: H3 / Hyena style (Fu et al. 2023; Poli et al. 2023).

Order-2 Hyena operator, as in Zoology's ``Hyena`` mixer (Arora et al. 2023):

    x1, x2, v = ShortConv(in_proj(u))          three (B, T, D) streams, kernel 3
    y = out_proj( x2 ⊙ (h ∗ (x1 ⊙ v) + b ⊙ (x1 ⊙ v)) )

where ``h ∗`` is a causal convolution of each channel with a filter as long as the context,
computed by FFT in O(T log T). Filters (``long_filter``):

* ``implicit`` (Hyena): ``h_c(t) = MLP(z(t))_c · exp(-δ_c t)`` — a small MLP with sine
  activations of a positional encoding z(t) (time and a complex exponential band), times
  an exponential decay whose rate differs per channel (Poli et al. 2023, §3.3);
* ``explicit``: a free (D, filter_len) parameter with the same decaying initialisation
  (the "long convolutions" of Fu et al. 2023).

``filter_len`` is Hyena's ``l_max``: set it to the context length. To generate, a long
convolution keeps all past inputs of its convolved stream — its state grows with the
sequence (D · (T − 1) numbers), unlike an SSM's.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from fmlab.models.layers import Linear, normal_param
from fmlab.models.mixers.base import MixerConfig, register_mixer
from fmlab.models.short_conv import ShortConv

SHORT_KERNEL = 3  # Hyena's short filter order
FILTER_ORDER = 64  # width of the implicit filter's MLP (Zoology's default)
FAST_DECAY, SLOW_DECAY, TARGET = 0.3, 1.5, 1e-2  # Hyena's ExponentialModulation


def fft_causal_conv(u: Tensor, h: Tensor) -> Tensor:
    """``y_t = Σ_{j=0}^{min(t, K-1)} h[:, j] u_{t-j}``: u (B, T, D), h (D, K) → (B, T, D).

    Zero-padded to 2T so the circular convolution of the FFT never wraps around. The
    transforms run along the last axis of a (B, D, T) view: on a CPU an FFT over the
    contiguous axis made a Hyena training step ~8 % faster than one over the strided time
    axis (d_model 16–64, T 64).
    """
    T = u.shape[1]
    h = h[:, :T]
    n = 2 * T
    spectrum = torch.fft.rfft(u.transpose(1, 2), n=n) * torch.fft.rfft(h, n=n)
    return torch.fft.irfft(spectrum, n=n)[..., :T].transpose(1, 2)


def decay_rates(channels: int) -> Tensor:
    """Per-channel decay δ_c in units of 1/filter_len: the filter falls to 1e-2 between
    0.3 and 1.5 filter lengths (Hyena's ExponentialModulation)."""
    return torch.linspace(-math.log(TARGET) / SLOW_DECAY, -math.log(TARGET) / FAST_DECAY, channels)


class ImplicitFilter(nn.Module):
    """Hyena's implicit filter: an FFN with sine activations of a positional encoding."""

    def __init__(self, channels: int, length: int, generator: torch.Generator):
        super().__init__()
        t = torch.linspace(0, 1, length)[:, None]  # (L, 1) normalised time
        w = 2 * math.pi * torch.arange(length)[:, None] / length
        self.register_buffer("z", torch.cat([t, torch.cos(w), torch.sin(-w)], dim=-1))  # (L, 3)
        self.register_buffer("decay", torch.exp(-t * decay_rates(channels)))  # (L, D)
        dims = [3, FILTER_ORDER, FILTER_ORDER, FILTER_ORDER]
        self.layers = nn.ModuleList(Linear(i, o, generator) for i, o in itertools.pairwise(dims))
        self.freq = nn.Parameter(torch.ones(FILTER_ORDER))  # sine frequency (Hyena's w=1)
        self.head = Linear(FILTER_ORDER, channels, generator, bias=False)

    def forward(self) -> Tensor:  # (D, L)
        h = self.z
        for layer in self.layers:
            h = torch.sin(self.freq * layer(h))
        return (self.head(h) * self.decay).T


class ExplicitFilter(nn.Module):
    """A free filter per channel, initialised as decaying noise (Fu et al. 2023)."""

    def __init__(self, channels: int, length: int, generator: torch.Generator):
        super().__init__()
        t = torch.linspace(0, 1, length)[None, :]
        noise = normal_param((channels, length), 1.0, generator)
        envelope = torch.exp(-t * decay_rates(channels)[:, None])
        self.weight = nn.Parameter(noise.detach() * envelope / math.sqrt(channels))

    def forward(self) -> Tensor:  # (D, L)
        return self.weight


class HyenaConfig(MixerConfig):
    kind: Literal["hyena"] = "hyena"
    long_filter: Literal["implicit", "explicit"] = "implicit"
    filter_len: int = Field(256, ge=2, description="filter length; set it to the context")


@register_mixer(HyenaConfig)
class GatedLongConv(nn.Module):
    """Order-2 Hyena: two multiplicative gates around one FFT long convolution."""

    def __init__(self, cfg, generator: torch.Generator):
        super().__init__()
        D, s = cfg.d_model, cfg.init_scale
        self.d_model, self.filter_len = D, cfg.mixer.filter_len
        self.in_proj = Linear(D, 3 * D, generator, bias=cfg.bias, init_scale=s)
        self.short = ShortConv(3 * D, SHORT_KERNEL, generator)
        build = ImplicitFilter if cfg.mixer.long_filter == "implicit" else ExplicitFilter
        self.filter = build(D, cfg.mixer.filter_len, generator)
        self.skip = normal_param((D,), 1.0, generator)  # b: the direct term (Hyena: randn)
        self.out_proj = Linear(D, D, generator, bias=cfg.bias, init_scale=s)

    def state_size(self, seq_len: int) -> int:
        """All past inputs of the convolved stream (up to the filter's reach), plus the
        short conv's buffer."""
        return self.d_model * (min(seq_len, self.filter_len) - 1) + self.short.state_size(seq_len)

    def flops_per_token(self, seq_len: int) -> float:
        """Projections, short conv, gates, and the FFT convolution: three real FFTs of
        size 2T (≈ 2.5·n·log₂n each) and the spectral product, per channel and token.
        The filter itself is input-independent and not counted."""
        D, n = self.d_model, 2 * seq_len
        fft = (3 * 2.5 * n * math.log2(n) + 6 * (n // 2 + 1)) / seq_len
        return 2 * 3 * D * D + 2 * D * D + self.short.flops_per_token(seq_len) + D * (fft + 4)

    def forward(self, x: Tensor, *, last_only: bool = False) -> Tensor:  # (B, T, D)
        T = x.shape[1]
        x1, x2, v = self.short(self.in_proj(x)).chunk(3, dim=-1)
        v = x1 * v
        h = self.filter()  # (D, filter_len)
        if last_only:  # one output: a direct dot product over the past is cheaper than FFT
            K = min(T, h.shape[1])
            taps = h[:, :K].flip(-1)  # taps[:, j] multiplies v_{T-K+j}
            y = torch.einsum("btd,dt->bd", v[:, T - K :], taps)[:, None] + self.skip * v[:, -1:]
            return self.out_proj(x2[:, -1:] * y)
        y = fft_causal_conv(v, h) + self.skip * v
        return self.out_proj(x2 * y)
