"""Grokfast-EMA gradient filter (Lee et al. 2024, "Grokfast: Accelerated Grokking by
Amplifying Slow Gradients", algorithm 2).

The gradient is split into a fast and a slow (low-pass) component; the slow one is
estimated by an exponential moving average and amplified: g ← g + λ · EMA_α(g).
"""

from __future__ import annotations

import torch
from torch import Tensor


class GrokfastEMA:
    def __init__(self, params: list[Tensor], alpha: float, lamb: float):
        self.params, self.alpha, self.lamb = params, alpha, lamb
        self.ema: list[Tensor] | None = None

    @torch.no_grad()
    def __call__(self) -> None:
        """Filter the ``.grad`` of every parameter in place (call after backward)."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.ema is None:
            self.ema = [g.clone() for g in grads]  # the paper's initialisation: EMA₀ = g₀
        else:
            torch._foreach_mul_(self.ema, self.alpha)
            torch._foreach_add_(self.ema, grads, alpha=1 - self.alpha)
        torch._foreach_add_(grads, self.ema, alpha=self.lamb)
