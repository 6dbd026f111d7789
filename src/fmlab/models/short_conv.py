"""A causal depthwise convolution over time with a short kernel ("short conv").

Every efficient recall architecture in Zoology (Arora et al. 2023) and Based (Arora et al.
2024) mixes each channel with its few predecessors before the long-range mixer: H3 and
Hyena put one on their projections, Mamba on its input branch. Before attention it lets a
single layer see the previous token, which is what associative recall needs (the key sits
right before its value), so the recall study gives attention one too (``short_conv=4``).

Not a mixer by itself: a layer that blocks (`GPTConfig.short_conv`) and mixers use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmlab.models.layers import fan_in_std, normal_param, zeros_param


class ShortConv(nn.Module):
    """``y_t = b + Σ_{j<K} w[:, j] ⊙ x_{t-K+1+j}`` per channel, zeros before the start.

    ``weight`` has shape (C, K); ``weight[:, K-1]`` multiplies the current position.
    """

    def __init__(self, channels: int, kernel: int, generator: torch.Generator, *, bias=True):
        super().__init__()
        if kernel < 1:
            raise ValueError(f"kernel must be >= 1, got {kernel}")
        self.kernel = kernel
        self.weight = normal_param((channels, kernel), fan_in_std(kernel), generator)
        self.bias = zeros_param((channels,)) if bias else None

    def state_size(self, seq_len: int) -> int:
        """Generation keeps the last K - 1 inputs of every channel."""
        return self.weight.shape[0] * (min(self.kernel, seq_len) - 1)

    def flops_per_token(self, seq_len: int) -> float:
        return 2.0 * self.weight.shape[0] * min(self.kernel, seq_len)

    def forward(self, x: Tensor, *, last_only: bool = False) -> Tensor:  # (B, T, C)
        K = self.kernel
        if last_only:
            window = x[:, -K:]  # (B, min(K, T), C)
            taps = self.weight[:, K - window.shape[1] :]  # (C, min(K, T)) aligned to the end
            y = torch.einsum("btc,ct->bc", window, taps)[:, None]  # (B, 1, C)
        else:  # K shifted multiply-adds: on a CPU ~1.6x faster than a grouped conv1d
            T = x.shape[1]
            padded = F.pad(x, (0, 0, K - 1, 0))  # (B, K - 1 + T, C)
            y = sum(padded[:, j : j + T] * self.weight[:, j] for j in range(K))
        return y if self.bias is None else y + self.bias
