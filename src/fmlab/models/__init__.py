"""Models: fmlab's own readable transformer and its pluggable sequence mixers."""

from fmlab.models.gpt import GPT, GPTConfig
from fmlab.models.mixers import MIXERS
from fmlab.registry import Registry

MODELS: Registry[type] = Registry("model")
MODELS.add("gpt", GPT)

__all__ = ["GPT", "MIXERS", "MODELS", "GPTConfig"]
