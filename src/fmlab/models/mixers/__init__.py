"""Sequence mixers: the part of a block that moves information between positions.

Every mixer is an ``nn.Module`` built by ``factory(cfg: GPTConfig, generator)`` and
called as ``mixer(x, last_only=False)`` on ``x`` of shape (B, T, D). With
``last_only=True`` it returns only the last position, (B, 1, D), which lets a task
that reads a single output position skip most of the work of the final block.

Registered mixers (Arora et al. 2023, "Zoology", compare exactly these families):

* ``attention`` — causal softmax attention, optionally windowed (Vaswani et al. 2017);
* ``linear_attention`` — causal linear attention with an elu+1 (Katharopoulos et al.
  2020) or 2nd-order Taylor (Based, Arora et al. 2024) feature map;
* ``ssm`` — a selective (input-dependent) diagonal state-space layer with state
  expansion ``d_state``, in the chunked "state-space duality" form of Mamba-2
  (Gu & Dao 2023; Dao & Gu 2024);
* ``hyena`` — a gated long convolution with implicit or explicit filters, by FFT
  (H3, Fu et al. 2023; Hyena, Poli et al. 2023).

Each also reports what it costs: ``state_size(seq_len)`` (numbers carried per sequence
while generating), ``flops_per_token(seq_len)`` (forward, a multiply-add counted as 2)
and its parameter count, gathered by :func:`mixer_info`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from fmlab.registry import Registry


class Mixer(Protocol):
    def __call__(self, x: Tensor, *, last_only: bool = False) -> Tensor: ...

    def state_size(self, seq_len: int) -> int: ...

    def flops_per_token(self, seq_len: int) -> float: ...


MixerFactory = Callable[..., nn.Module]
MIXERS: Registry[MixerFactory] = Registry("mixer")


def build_mixer(name: str, cfg: object, generator: torch.Generator) -> nn.Module:
    return MIXERS.get(name)(cfg, generator)


@dataclass(frozen=True)
class MixerInfo:
    """What one mixer costs at a given sequence length."""

    name: str
    params: int
    state_size: int  # numbers carried per sequence during generation
    flops_per_token: float  # forward FLOPs per token, averaged over the sequence


def mixer_info(mixer: nn.Module, seq_len: int, name: str | None = None) -> MixerInfo:
    return MixerInfo(
        name=name or type(mixer).__name__,
        params=sum(p.numel() for p in mixer.parameters()),
        state_size=int(mixer.state_size(seq_len)),
        flops_per_token=float(mixer.flops_per_token(seq_len)),
    )


def model_state_size(model: nn.Module, seq_len: int) -> int:
    """Numbers a GPT carries per sequence while generating: each block's mixer state plus
    the buffer of its short convolution (if any). Embeddings and MLPs carry none."""
    total = 0
    for block in model.blocks:
        total += int(block.mixer.state_size(seq_len))
        if getattr(block, "short_conv", None) is not None:
            total += int(block.short_conv.state_size(seq_len))
    return total


from fmlab.models.mixers import attention as _attention  # noqa: E402,F401  (registers)
from fmlab.models.mixers import linear_attention as _linear  # noqa: E402,F401
from fmlab.models.mixers import long_conv as _long_conv  # noqa: E402,F401
from fmlab.models.mixers import ssm as _ssm  # noqa: E402,F401

__all__ = ["MIXERS", "Mixer", "MixerInfo", "build_mixer", "mixer_info", "model_state_size"]
