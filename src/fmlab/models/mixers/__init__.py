"""Sequence mixers: the part of a block that moves information between positions.

Every mixer is an ``nn.Module`` built by ``factory(cfg: GPTConfig, generator)`` and
called as ``mixer(x, last_only=False)`` on ``x`` of shape (B, T, D). With
``last_only=True`` it returns only the last position, (B, 1, D), which lets a task
that reads a single output position skip most of the work of the final block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

from fmlab.registry import Registry


class Mixer(Protocol):
    def __call__(self, x: Tensor, *, last_only: bool = False) -> Tensor: ...


MixerFactory = Callable[..., nn.Module]
MIXERS: Registry[MixerFactory] = Registry("mixer")


def build_mixer(name: str, cfg: object, generator: torch.Generator) -> nn.Module:
    return MIXERS.get(name)(cfg, generator)


from fmlab.models.mixers import attention as _attention  # noqa: E402,F401  (registers)

__all__ = ["MIXERS", "Mixer", "build_mixer"]
