"""Tiny random Hugging Face models built from configs (GPT-2, OPT, Llama, BERT: 4 layers,
width 64) with a byte tokenizer: offline stand-ins for tests and smoke presets."""

from __future__ import annotations

from typing import Any

import torch

from fmlab.errors import UserInputError
from fmlab.models.hf.loaded import LoadedModel
from fmlab.models.hf.tokenizer import ByteTokenizer


def _tiny_configs() -> dict[str, tuple[str, dict[str, Any]]]:
    D, L, H, F, P = 64, 4, 4, 256, 256
    special = {"pad_token_id": 256, "bos_token_id": 257, "eos_token_id": 258}
    return {
        "gpt2": ("GPT2LMHeadModel", dict(n_layer=L, n_embd=D, n_head=H, n_positions=P, **special)),
        "opt": (
            "OPTForCausalLM",
            dict(
                num_hidden_layers=L,
                hidden_size=D,
                num_attention_heads=H,
                ffn_dim=F,
                max_position_embeddings=P,
                word_embed_proj_dim=D,
                **special,
            ),
        ),
        "llama": (
            "LlamaForCausalLM",
            dict(
                num_hidden_layers=L,
                hidden_size=D,
                num_attention_heads=H,
                intermediate_size=F,
                max_position_embeddings=P,
                **special,
            ),
        ),
        "bert": (
            "BertForMaskedLM",
            dict(
                num_hidden_layers=L,
                hidden_size=D,
                num_attention_heads=H,
                intermediate_size=F,
                max_position_embeddings=P,
                pad_token_id=256,
            ),
        ),
    }


TINY = ("gpt2", "opt", "llama", "bert")


def check_tiny(family: str) -> None:
    if family not in TINY:
        raise UserInputError(f"tiny models exist for {', '.join(TINY)}; got tiny-{family}")


def tiny(family: str, *, seed: int = 0) -> LoadedModel:
    """A small random model of ``family`` (gpt2, opt, llama, bert: 4 layers, width 64)
    with a :class:`ByteTokenizer`, initialised from ``seed`` without touching the
    global RNG state (it is forked and restored)."""
    import transformers

    check_tiny(family)
    cls_name, kwargs = _tiny_configs()[family]
    cls = getattr(transformers, cls_name)
    config = cls.config_class(vocab_size=ByteTokenizer.vocab_size, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    return LoadedModel(model.eval(), ByteTokenizer(), f"tiny-{family}", None, "random init")
