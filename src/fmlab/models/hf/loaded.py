"""What loading a model gives back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode, its tokenizer (None if it has none) and where it came from.
    ``weights`` is ``safetensors``, ``pickle (weights_only)`` or ``random init``."""

    model: nn.Module
    tokenizer: Any
    name: str
    path: Path | None
    weights: str
