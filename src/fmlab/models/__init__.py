"""Models: fmlab's own readable transformer, its pluggable sequence mixers, and loading
real Hugging Face checkpoints (:mod:`fmlab.models.hf`)."""

from fmlab.models.gpt import GPT, GPTConfig
from fmlab.models.mixers import MIXERS

__all__ = ["GPT", "MIXERS", "GPTConfig"]
