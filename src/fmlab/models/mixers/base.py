"""What every sequence mixer shares: its config base, the registry, and cost accounting.

A mixer file defines a typed config (a :class:`MixerConfig` with a ``kind`` literal and
the mixer's own options) and an ``nn.Module`` built as ``Module(cfg, generator)`` from the
whole :class:`~fmlab.models.gpt.GPTConfig` (the mixer reads ``cfg.mixer`` for its own
options and ``d_model``, ``n_heads``… for the shared ones), registered together:

    class WindowedConfig(MixerConfig):
        kind: Literal["windowed"] = "windowed"
        window: int = Field(8, ge=1)

    @register_mixer(WindowedConfig)
    class Windowed(nn.Module):
        def __init__(self, cfg: GPTConfig, generator: torch.Generator): ...
        def forward(self, x, *, last_only=False): ...      # (B, T, D) -> (B, T or 1, D)
        def state_size(self, seq_len): ...
        def flops_per_token(self, seq_len): ...

That file is the whole extension: ``GPTConfig(mixer="windowed")`` or
``--set model.mixer.kind=windowed --set model.mixer.window=4`` then build it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from pydantic import Field
from torch import Tensor, nn

from fmlab.config import Config
from fmlab.registry import Registry


class MixerConfig(Config):
    """Base of every mixer's config; ``kind`` names the registered mixer."""

    kind: str = Field(description="the registered mixer (see `fmlab list`)")


class Mixer(Protocol):
    def __call__(self, x: Tensor, *, last_only: bool = False) -> Tensor: ...

    def state_size(self, seq_len: int) -> int: ...

    def flops_per_token(self, seq_len: int) -> float: ...


@dataclass(frozen=True)
class MixerEntry:
    """A registered mixer: its config class and the module built from it."""

    config: type[MixerConfig]
    module: type[nn.Module]


MIXERS: Registry[MixerEntry] = Registry("mixer")


def register_mixer(config: type[MixerConfig]) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Register the decorated module class under ``config``'s ``kind``."""
    kind = config.model_fields["kind"].default
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{config.__name__}.kind needs a string default (its Literal name)")

    def add(module: type[nn.Module]) -> type[nn.Module]:
        MIXERS.add(kind, MixerEntry(config, module))
        return module

    return add


def build_mixer(cfg: object, generator: torch.Generator) -> nn.Module:
    """The mixer ``cfg.mixer`` describes, for a model config ``cfg`` (a GPTConfig)."""
    return MIXERS.get(cfg.mixer.kind).module(cfg, generator)  # type: ignore[attr-defined]


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
