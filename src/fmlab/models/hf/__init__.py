"""Real Hugging Face models — loaded safely and offline first (:mod:`.load`), plus tiny
random ones built from configs for tests (:mod:`.tiny`, with :mod:`.tokenizer`'s byte
tokenizer).

    from fmlab.models.hf import load
    m = load("minilm")                      # the pretrained all-MiniLM-L6-v2, shipped
    m = load("/models/gpt2", task="causal-lm")
    m = load("tiny-gpt2")                   # a random tiny GPT-2 built from a config
"""

from fmlab.models.hf.load import (
    ALIASES,
    HEADS,
    PICKLE_SUFFIXES,
    UnsafeModelError,
    check_directory,
    known_names,
    load,
    offline,
    read_pickle_weights,
    resolve,
)
from fmlab.models.hf.loaded import LoadedModel
from fmlab.models.hf.tiny import TINY, check_tiny, tiny
from fmlab.models.hf.tokenizer import ByteTokenizer

__all__ = [
    "ALIASES",
    "HEADS",
    "PICKLE_SUFFIXES",
    "TINY",
    "ByteTokenizer",
    "LoadedModel",
    "UnsafeModelError",
    "check_directory",
    "check_tiny",
    "known_names",
    "load",
    "offline",
    "read_pickle_weights",
    "resolve",
    "tiny",
]
