"""Tiny random models of every supported family, built from configs (no network)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

B = 2
T_TEXT = 6
D = 32
H = 2
V = 100


@dataclass
class Case:
    name: str
    model: Any
    inputs: dict[str, torch.Tensor]
    towers: dict[str, tuple[int, int, int]]  # prefix -> (T, D, H)
    logits: tuple[int, ...] | None  # shape of the logits site, None if absent
    causal: str | None = None  # tower whose logits are a causal LM's
    pre_ln: bool = True  # resid_post = resid_pre + attn_out + mlp_out


def _seeded(build):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build().eval()


def _text(seed: int = 0, T: int = T_TEXT) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (B, T), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones(B, T, dtype=torch.long)}


def _pixels(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def build(name: str, seed: int = 0) -> Case:
    tf = transformers
    small = dict(num_hidden_layers=2, hidden_size=D, num_attention_heads=H, intermediate_size=64)
    if name == "gpt2":
        cfg = tf.GPT2Config(n_layer=2, n_embd=D, n_head=H, vocab_size=V, n_positions=32)
        m = _seeded(lambda: tf.GPT2LMHeadModel(cfg))
        return Case(name, m, _text(seed), {"": (T_TEXT, D, H)}, (B, T_TEXT, V), "")
    if name == "opt":
        cfg = tf.OPTConfig(
            num_hidden_layers=2, hidden_size=D, num_attention_heads=H, ffn_dim=64,
            vocab_size=V, max_position_embeddings=32, word_embed_proj_dim=D,
            pad_token_id=1, bos_token_id=2, eos_token_id=2,
        )  # fmt: skip
        m = _seeded(lambda: tf.OPTForCausalLM(cfg))
        return Case(name, m, _text(seed), {"": (T_TEXT, D, H)}, (B, T_TEXT, V), "")
    if name == "llama":
        cfg = tf.LlamaConfig(
            **small, num_key_value_heads=1, vocab_size=V, max_position_embeddings=32
        )
        m = _seeded(lambda: tf.LlamaForCausalLM(cfg))
        return Case(name, m, _text(seed), {"": (T_TEXT, D, H)}, (B, T_TEXT, V), "")
    if name in ("mistral", "qwen2"):  # the Llama layout under other model_types
        config_class = tf.MistralConfig if name == "mistral" else tf.Qwen2Config
        cls = tf.MistralForCausalLM if name == "mistral" else tf.Qwen2ForCausalLM
        cfg = config_class(**small, num_key_value_heads=1, vocab_size=V, max_position_embeddings=32)
        m = _seeded(lambda: cls(cfg))
        return Case(name, m, _text(seed), {"": (T_TEXT, D, H)}, (B, T_TEXT, V), "")
    if name == "bert":
        cfg = tf.BertConfig(**small, vocab_size=V, max_position_embeddings=32)
        m = _seeded(lambda: tf.BertForMaskedLM(cfg))
        return Case(name, m, _text(seed), {"": (T_TEXT, D, H)}, (B, T_TEXT, V), pre_ln=False)
    if name == "vit":
        cfg = tf.ViTConfig(**small, image_size=16, patch_size=8, num_labels=3)
        m = _seeded(lambda: tf.ViTForImageClassification(cfg))
        return Case(name, m, {"pixel_values": _pixels(seed)}, {"": (5, D, H)}, (B, 3))
    if name == "dinov2":
        cfg = tf.Dinov2Config(
            num_hidden_layers=2, hidden_size=D, num_attention_heads=H, mlp_ratio=2,
            image_size=16, patch_size=8,
        )  # fmt: skip
        m = _seeded(lambda: tf.Dinov2Model(cfg))
        return Case(name, m, {"pixel_values": _pixels(seed)}, {"": (5, D, H)}, None)
    if name == "clip":
        cfg = tf.CLIPConfig(
            text_config={**small, "vocab_size": V, "max_position_embeddings": 32},
            vision_config={**small, "hidden_size": 24, "image_size": 16, "patch_size": 8},
            projection_dim=16,
        )
        m = _seeded(lambda: tf.CLIPModel(cfg))
        inputs = {**_text(seed), "pixel_values": _pixels(seed)}
        return Case(name, m, inputs, {"text": (T_TEXT, D, H), "vision": (5, 24, H)}, None)
    if name == "clip-text":
        cfg = tf.CLIPTextConfig(**small, vocab_size=V, max_position_embeddings=32)
        m = _seeded(lambda: tf.CLIPTextModel(cfg))
        return Case(name, m, _text(seed), {"": (T_TEXT, D, H)}, None)
    if name == "clip-vision":
        cfg = tf.CLIPVisionConfig(**small, image_size=16, patch_size=8)
        m = _seeded(lambda: tf.CLIPVisionModel(cfg))
        return Case(name, m, {"pixel_values": _pixels(seed)}, {"": (5, D, H)}, None)
    if name == "whisper":
        cfg = tf.WhisperConfig(
            encoder_layers=2, decoder_layers=2, d_model=D, encoder_attention_heads=H,
            decoder_attention_heads=H, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=V,
            num_mel_bins=8, max_source_positions=16, max_target_positions=32,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
            suppress_tokens=None, begin_suppress_tokens=None,
        )  # fmt: skip
        m = _seeded(lambda: tf.WhisperForConditionalGeneration(cfg))
        g = torch.Generator().manual_seed(seed)
        inputs = {
            "input_features": torch.randn(B, 8, 32, generator=g),
            "decoder_input_ids": torch.randint(3, V, (B, 5), generator=g),
        }
        towers = {"encoder": (16, D, H), "decoder": (5, D, H)}
        return Case(name, m, inputs, towers, (B, 5, V), "decoder")
    if name == "fmlab-gpt":
        from fmlab.models import GPT, GPTConfig

        cfg = GPTConfig(n_layers=2, d_model=D, n_heads=H, d_mlp=64)
        m = GPT(cfg, vocab_size=V, seq_len=32, generator=torch.Generator().manual_seed(0))
        return Case(
            name, m.eval(), _text(seed)["input_ids"], {"": (T_TEXT, D, H)}, (B, T_TEXT, V), ""
        )
    raise KeyError(name)


FAMILIES = (
    *("gpt2", "opt", "llama", "mistral", "qwen2", "bert", "vit", "dinov2"),
    *("clip", "clip-text", "clip-vision", "whisper", "fmlab-gpt"),
)


@pytest.fixture(scope="module", params=FAMILIES)
def case(request) -> Case:
    return build(request.param)


@pytest.fixture(scope="session")
def build_case():
    """``build_case(family, seed=0)`` → a fresh :class:`Case`."""
    return build
