"""Models and tokenizers for ``fmlab watermark``: a causal LM to generate with, or only
its tokenizer and vocabulary size to detect with (no weights are loaded to detect).

The green lists and ``r`` values depend on the vocabulary size of the model's output
layer (``config.vocab_size``), which can exceed the tokenizer's length — as
``transformers``' own ``WatermarkDetector`` does, fmlab uses the config's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fmlab.errors import UserInputError


@dataclass(frozen=True)
class Vocabulary:
    tokenizer: Any
    vocab_size: int
    bos_token_id: int | None

    def encode(self, text: str) -> list[int]:
        enc = self.tokenizer(text, return_tensors="pt")
        return [int(i) for i in enc["input_ids"][0].tolist()]

    def pieces(self, ids: list[int]) -> list[str]:
        return [self.tokenizer.decode([i]) for i in ids]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)


def vocabulary(
    model: str, *, allow_unsafe_pickle: bool = False, trust_remote_code: bool = False
) -> Vocabulary:
    """The tokenizer and output vocabulary size of ``model`` (tiny-*, a directory, a
    cached hub id), under fmlab's loading rules (no remote code without consent)."""
    from fmlab.models.hf import ByteTokenizer, check_directory, check_tiny, resolve

    if model.startswith("tiny-"):
        check_tiny(model.removeprefix("tiny-"))
        return Vocabulary(ByteTokenizer(), ByteTokenizer.vocab_size, None)
    from transformers import AutoConfig, AutoTokenizer

    path = resolve(
        model, allow_unsafe_pickle=allow_unsafe_pickle, trust_remote_code=trust_remote_code
    )
    check_directory(
        path, allow_unsafe_pickle=allow_unsafe_pickle, trust_remote_code=trust_remote_code
    )
    try:
        config = AutoConfig.from_pretrained(
            path, local_files_only=True, trust_remote_code=trust_remote_code
        )
        tok = AutoTokenizer.from_pretrained(
            path, local_files_only=True, trust_remote_code=trust_remote_code
        )
    except Exception as e:  # a damaged or foreign directory: one line
        raise UserInputError(
            f"cannot read the tokenizer of {path}: {type(e).__name__}: {e}"
        ) from None
    vocab = getattr(config, "vocab_size", None) or len(tok)
    return Vocabulary(_untruncated(tok), int(vocab), getattr(tok, "bos_token_id", None))


def _untruncated(tok: Any) -> Any:
    """Texts are scored whole: no "longer than the maximum length" warning (generation
    slides its window over the model's positions)."""
    if hasattr(tok, "model_max_length"):
        tok.model_max_length = 10**12
    return tok


def causal_lm(
    model: str, *, seed: int = 0, allow_unsafe_pickle: bool = False, trust_remote_code: bool = False
) -> tuple[Any, Vocabulary]:
    """A causal LM in eval mode on the current device, with its :class:`Vocabulary`."""
    from fmlab.device import place
    from fmlab.models.hf import load

    loaded = load(
        model,
        task="causal-lm",
        seed=seed,
        allow_unsafe_pickle=allow_unsafe_pickle,
        trust_remote_code=trust_remote_code,
    )
    if loaded.tokenizer is None:
        raise UserInputError(f"{model} has no tokenizer: it cannot generate text")
    vocab = int(getattr(loaded.model.config, "vocab_size", 0)) or int(
        loaded.model.get_output_embeddings().weight.shape[0]
    )
    bos = getattr(loaded.tokenizer, "bos_token_id", None)
    return place(loaded.model), Vocabulary(_untruncated(loaded.tokenizer), vocab, bos)
