"""The bundled family mappings: fmlab's own GPT and the Hugging Face families
GPT-2, OPT, Llama (and the Llama-layout Mistral/Qwen2), BERT (incl. MiniLM), RoBERTa,
ViT, DINOv2, CLIP (text and vision towers) and Whisper (encoder and decoder).

Module names follow transformers 5.x. Each mapping was checked against the model's
forward code: ``attn_out``/``mlp_out`` are exactly the tensors added to the residual
stream (tests verify ``resid_post = resid_pre + attn_out + mlp_out`` for pre-LN blocks).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fmlab.hooks.sites import HFFamily, Site, Tower, register_family

BLOCK_IO = {"resid_pre": Site("", "input"), "resid_post": Site("")}


def _attn(path: str) -> dict[str, Site]:
    """An attention module returning ``(out, weights)``: out is ``attn_out``, weights
    (only computed by eager attention) the pattern."""
    return {"attn_out": Site(path, index=0), **_pattern(path)}


def _pattern(path: str) -> dict[str, Site]:
    return {"attn.pattern": Site(path, index=1, pos_dim=2, readonly=True)}


# ---- decoder-only language models -------------------------------------------------
GPT2 = HFFamily(
    "gpt2",
    ("gpt2",),
    {
        "": Tower(
            roots=("transformer", ""),
            blocks="h",
            block_sites={**BLOCK_IO, **_attn("attn"), "mlp_out": Site("mlp")},
            sites={"final": Site("{root}.ln_f")},
            lens=("{root}.ln_f", "lm_head"),
        )
    },
    head={"logits": Site("lm_head")},
)

OPT = HFFamily(
    "opt",
    ("opt",),
    {
        "": Tower(
            roots=("model.decoder", "decoder"),
            blocks="layers",
            block_sites={
                **BLOCK_IO,
                **_attn("self_attn"),
                # fc2 runs on flattened (B·T, D) rows; view it as the block input's shape
                "mlp_out": Site("fc2", shape_of=""),
            },
            sites={"final": Site("{root}.final_layer_norm")},
            lens=("{root}.final_layer_norm", "{root}.project_out", "lm_head"),
        )
    },
    head={"logits": Site("lm_head")},
)

LLAMA = HFFamily(
    "llama",
    ("llama", "mistral", "qwen2"),
    {
        "": Tower(
            roots=("model", ""),
            blocks="layers",
            block_sites={**BLOCK_IO, **_attn("self_attn"), "mlp_out": Site("mlp")},
            sites={"final": Site("{root}.norm")},
            lens=("{root}.norm", "lm_head"),
        )
    },
    head={"logits": Site("lm_head")},
)


# ---- encoders -----------------------------------------------------------------------
def _bert_tower(roots: tuple[str, ...], head: str) -> Tower:
    return Tower(
        roots=roots,
        blocks="encoder.layer",
        block_sites={
            **BLOCK_IO,
            # post-LN: the sublayer outputs before their add-and-norm
            "attn_out": Site("attention.output.dense"),
            "mlp_out": Site("output.dense"),
            **_pattern("attention.self"),
        },
        sites={"embed": Site("{root}.embeddings"), "final": Site("{root}.encoder.layer.{last}")},
        lens=(head,),  # post-LN: each block output is already normalised
    )


BERT = HFFamily("bert", ("bert",), {"": _bert_tower(("bert", ""), "cls")}, {"logits": Site("cls")})
ROBERTA = HFFamily(
    "roberta",
    ("roberta",),
    {"": _bert_tower(("roberta", ""), "lm_head")},
    {"logits": Site("lm_head")},
)

VIT = HFFamily(
    "vit",
    ("vit",),
    {
        "": Tower(
            roots=("vit", ""),
            blocks="layers",
            block_sites={**BLOCK_IO, **_attn("attention"), "mlp_out": Site("mlp")},
            sites={"embed": Site("{root}.embeddings"), "final": Site("{root}.layernorm")},
        )
    },
    head={"logits": Site("classifier")},
)

DINOV2 = HFFamily(
    "dinov2",
    ("dinov2",),
    {
        "": Tower(
            roots=("dinov2", ""),
            blocks="encoder.layer",
            block_sites={
                **BLOCK_IO,
                # what is added to the residual is the layer-scaled sublayer output
                "attn_out": Site("layer_scale1"),
                "mlp_out": Site("layer_scale2"),
                **_pattern("attention"),
            },
            sites={"embed": Site("{root}.embeddings"), "final": Site("{root}.layernorm")},
        )
    },
    head={"logits": Site("classifier")},
)


def _clip_tower(roots: tuple[str, ...], vision: bool) -> Tower:
    sites = {"embed": Site("{root}.embeddings")}
    if vision:
        # last_hidden_state of the vision tower is the encoder output; post_layernorm
        # is applied to the pooled CLS token only: exposed as ``pooled`` (B, D)
        sites |= {
            "final": Site("{root}.encoder.layers.{last}"),
            "pooled": Site("{root}.post_layernorm"),
        }
    else:
        sites |= {"final": Site("{root}.final_layer_norm")}
    return Tower(
        roots=roots,
        blocks="encoder.layers",
        block_sites={**BLOCK_IO, **_attn("self_attn"), "mlp_out": Site("mlp")},
        sites=sites,
    )


CLIP = HFFamily(
    "clip",
    ("clip",),
    {
        "text": _clip_tower(("text_model",), vision=False),
        "vision": _clip_tower(("vision_model",), vision=True),
    },
)
CLIP_TEXT = HFFamily(
    "clip-text", ("clip_text_model",), {"": _clip_tower(("text_model", ""), False)}
)
CLIP_VISION = HFFamily(
    "clip-vision", ("clip_vision_model",), {"": _clip_tower(("vision_model", ""), True)}
)

# ---- encoder-decoder ---------------------------------------------------------------
_WHISPER_BLOCK = {**BLOCK_IO, **_attn("self_attn"), "mlp_out": Site("fc2")}
WHISPER = HFFamily(
    "whisper",
    ("whisper",),
    {
        "encoder": Tower(
            roots=("model.encoder", "encoder"),
            blocks="layers",
            block_sites=_WHISPER_BLOCK,
            sites={"final": Site("{root}.layer_norm")},
        ),
        "decoder": Tower(
            roots=("model.decoder", "decoder"),
            blocks="layers",
            block_sites={**_WHISPER_BLOCK, "cross_attn_out": Site("encoder_attn", index=0)},
            sites={"final": Site("{root}.layer_norm")},
            lens=("{root}.layer_norm", "proj_out"),
        ),
    },
    head={"logits": Site("proj_out")},
)


# ---- fmlab's own GPT ------------------------------------------------------------------
def _own_core(model: nn.Module) -> Any:
    """The fmlab GPT itself, or the one a wrapper keeps as ``.gpt`` (e.g. ReadoutGPT)."""
    from fmlab.models.gpt import GPT

    if isinstance(model, GPT):
        return model
    inner = getattr(model, "gpt", None)
    return inner if isinstance(inner, GPT) else None


class OwnGPTFamily:
    """fmlab's :class:`~fmlab.models.gpt.GPT` (and wrappers that keep one as ``.gpt``):
    its :class:`HookPoint` modules *are* the sites, so every site is the output of an
    identity module."""

    name = "fmlab-gpt"

    def matches(self, model: nn.Module) -> bool:
        return _own_core(model) is not None

    def sites(self, model: nn.Module) -> dict[str, Site]:
        paths = {id(m): n for n, m in model.named_modules()}
        return {
            name: Site(paths[id(hp)], pos_dim=2 if name.endswith("pattern") else 1)
            for name, hp in _own_core(model).sites().items()
        }

    def lens(self, model: Any, tower: str = "") -> Any:
        core = _own_core(model)

        def apply(x):  # (B, T, D) -> (B, T, V), as in GPT.forward
            W_U = core.W_E.T if core.W_U is None else core.W_U
            return core.ln_final(x) @ W_U

        return apply


for _family in (
    GPT2,
    OPT,
    LLAMA,
    BERT,
    ROBERTA,
    VIT,
    DINOV2,
    CLIP,
    CLIP_TEXT,
    CLIP_VISION,
    WHISPER,
):
    register_family(_family)
register_family(OwnGPTFamily())
