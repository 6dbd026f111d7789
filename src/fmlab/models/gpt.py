"""A small, readable decoder-only transformer (GPT), written for experiments.

Read top to bottom: config, block, model. Every weight is initialised from an explicit
``torch.Generator``; activations pass through :class:`HookPoint` modules at the
canonical sites (docs/architecture.md, "Site names"), so :mod:`fmlab.hooks` can capture
or patch them:

    embed, blocks.{i}.resid_pre, blocks.{i}.attn_out, blocks.{i}.mlp_out,
    blocks.{i}.resid_post, final, logits
    (extra: blocks.{i}.attn.pattern, blocks.{i}.mlp.post)

The options cover the classic grokking setups (Power et al. 2022; Nanda et al. 2023:
1 layer, no LayerNorm, ReLU) as well as pre-LN GPT-2-like models and attention-only
models (``d_mlp=0``, Olsson et al. 2022). The sequence mixer is pluggable
(:mod:`fmlab.models.mixers`): ``mixer`` holds the chosen mixer's own typed config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field, SerializeAsAny, field_validator, model_validator
from torch import Tensor, nn

from fmlab.config import Config, validate
from fmlab.limits import check_memory
from fmlab.models.layers import MLP, HookPoint, fan_in_std, make_norm, normal_param, project
from fmlab.models.mixers import MIXERS, MixerConfig, build_mixer
from fmlab.models.moe import MoEConfig, build_moe
from fmlab.models.short_conv import ShortConv

# Until each mixer had its own config, GPTConfig carried every mixer's options flat, with
# these defaults: name -> (mixer, its field, default). The flat names are still accepted
# (``--set model.d_state=8``), and run ids keep this layout (:meth:`GPTConfig.run_id_view`),
# so that runs made before are found and reused. New mixers never join this table.
FLAT_OPTIONS: dict[str, tuple[str, str, Any]] = {
    "attn_window": ("attention", "window", None),
    "d_state": ("ssm", "d_state", 16),
    "feature_map": ("linear_attention", "feature_map", "taylor"),
    "feature_dim": ("linear_attention", "feature_dim", 16),
    "long_filter": ("hyena", "long_filter", "implicit"),
    "filter_len": ("hyena", "filter_len", 256),
}


class GPTConfig(Config):
    """Architecture only; vocabulary size and context length come from the task."""

    d_model: int = Field(128, ge=1, le=2**16)
    n_layers: int = Field(1, ge=1, le=2**12)
    n_heads: int = Field(4, ge=1, le=2**12)
    d_head: int | None = Field(None, ge=1, description="default d_model // n_heads")
    d_mlp: int = Field(512, ge=0, le=2**18, description="0 = attention-only blocks")
    act: Literal["relu", "gelu"] = "relu"
    norm: Literal["layernorm", "none"] = "layernorm"
    tied_embeddings: bool = False
    pos_embed: Literal["learned", "none"] = "learned"
    bias: bool = True
    mixer: SerializeAsAny[MixerConfig] = Field(
        "attention", description="the sequence mixer: a name, or its config {kind: …, …}"
    )
    init_scale: float = Field(1.0, gt=0)
    short_conv: int = Field(0, ge=0, description="causal depthwise conv kernel before the mixer")
    moe: MoEConfig | None = Field(None, description="a mixture of experts replaces the MLP")

    @model_validator(mode="before")
    @classmethod
    def _flat_mixer_options(cls, data: Any) -> Any:
        """Move the flat options of :data:`FLAT_OPTIONS` into the mixer's config."""
        if not isinstance(data, Mapping) or not FLAT_OPTIONS.keys() & data.keys():
            return data
        data = dict(data)
        mixer = data.get("mixer", "attention")
        if isinstance(mixer, MixerConfig):
            mixer = mixer.model_dump()
        spec = {"kind": mixer} if isinstance(mixer, str) else dict(mixer)
        kind = spec.get("kind", "attention")
        for flat in [k for k in FLAT_OPTIONS if k in data]:
            owner, field, default = FLAT_OPTIONS[flat]
            value = data.pop(flat)
            if owner == kind:
                spec[field] = value
            elif value != default:  # old configs carried every mixer's options at defaults
                raise ValueError(
                    f"{flat} is an option of the {owner} mixer; this model's "
                    f"mixer is {kind} (set mixer={owner} with it)"
                )
        data["mixer"] = spec
        return data

    @field_validator("mixer", mode="before")
    @classmethod
    def _mixer_config(cls, value: Any) -> Any:
        """A mixer name or ``{kind: name, …}`` → that mixer's own typed config."""
        if isinstance(value, MixerConfig):
            return value
        spec = {"kind": value} if isinstance(value, str) else value
        if not isinstance(spec, Mapping):
            raise ValueError("give a mixer name or {kind: name, options…}")
        kind = spec.get("kind", "attention")
        if kind not in MIXERS:
            raise ValueError(f"mixer {kind!r} is not one of: {', '.join(MIXERS.names())}")
        return validate(MIXERS.get(kind).config, {"kind": kind, **spec})

    @model_validator(mode="after")
    def _check(self) -> GPTConfig:
        if self.d_head is None and self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; set d_head"
            )
        if self.moe is not None and self.d_mlp == 0 and self.moe.d_expert is None:
            raise ValueError("moe needs d_mlp > 0 or moe.d_expert (the experts' hidden width)")
        return self

    @property
    def head_dim(self) -> int:
        return self.d_head or self.d_model // self.n_heads

    def at_width(self, width: int, head_dim: int, mlp_ratio: int) -> GPTConfig:
        """This config at ``d_model = width``, for a size family: heads of ``head_dim``
        (at least one head, the width split evenly among them) and an MLP ``mlp_ratio``
        times as wide."""
        heads = max(1, width // head_dim)
        return self.model_copy(
            update={"d_model": width, "n_heads": heads, "d_head": width // heads,
                    "d_mlp": mlp_ratio * width}
        )  # fmt: skip

    def approx_params(self, vocab_size: int, seq_len: int) -> int:
        """Parameters of a GPT of this config, to within a small factor and without
        building it (for :func:`fmlab.limits.check_memory`): embeddings, four D×(H·d_head)
        projections per block (every mixer is of that order) and the MLP or experts."""
        D, inner = self.d_model, self.n_heads * self.head_dim
        embed = vocab_size * D * (1 if self.tied_embeddings else 2) + seq_len * D
        experts = 1 if self.moe is None else self.moe.n_experts
        width = self.d_mlp if self.moe is None or self.moe.d_expert is None else self.moe.d_expert
        return embed + self.n_layers * (4 * D * inner + 2 * D * width * experts)

    def run_id_view(self, data: dict[str, Any]) -> dict[str, Any]:
        """The flat layout of :data:`FLAT_OPTIONS` for the run id: ``mixer`` is the kind,
        and every flat option is present (the chosen mixer's value, else the old default).
        A mixer config with options outside that layout enters whole."""
        mixer = data.pop("mixer")
        own = {
            field: flat
            for flat, (owner, field, _) in FLAT_OPTIONS.items()
            if owner == mixer["kind"]
        }
        rest = {k: v for k, v in mixer.items() if k != "kind" and k not in own}
        data["mixer"] = mixer if rest else mixer["kind"]
        data |= {flat: default for flat, (_, _, default) in FLAT_OPTIONS.items()}
        data |= {flat: mixer[field] for field, flat in own.items() if field in mixer}
        return data


class Block(nn.Module):
    """Pre-norm residual block: x + mixer(norm(x)), then x + mlp(norm(x))."""

    stacked_ok = True  # as its parts are (fmlab.models.layers.runs_stacked checks them)

    def __init__(self, cfg: GPTConfig, generator: torch.Generator):
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.ln1 = make_norm(cfg.norm, cfg.d_model)
        self.short_conv = (
            ShortConv(cfg.d_model, cfg.short_conv, generator) if cfg.short_conv else None
        )
        self.mixer = build_mixer(cfg, generator)
        self.hook_attn_out = HookPoint()
        self.mlp: nn.Module | None = None
        if cfg.moe is not None:
            self.ln2 = make_norm(cfg.norm, cfg.d_model)
            self.mlp = build_moe(cfg, generator)
            self.hook_mlp_out = HookPoint()
        elif cfg.d_mlp > 0:
            self.ln2 = make_norm(cfg.norm, cfg.d_model)
            self.mlp = MLP(
                cfg.d_model,
                cfg.d_mlp,
                cfg.act,
                generator,
                bias=cfg.bias,
                init_scale=cfg.init_scale,
            )
            self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x: Tensor, *, last_only: bool = False) -> Tensor:  # (B, T, D)
        x = self.hook_resid_pre(x)
        h = self.ln1(x)
        if self.short_conv is not None:
            h = self.short_conv(h)
        mixed = self.hook_attn_out(self.mixer(h, last_only=last_only))
        x = (x[..., -1:, :] if last_only else x) + mixed
        if self.mlp is not None:
            x = x + self.hook_mlp_out(self.mlp(self.ln2(x)))
        return self.hook_resid_post(x)


class GPT(nn.Module):
    """Token (or given) embeddings → blocks → final norm → unembedding."""

    stacked_ok = True  # with stacked weights, tokens (K, B, T) → logits (K, B, T, V)

    def __init__(
        self,
        cfg: GPTConfig,
        *,
        vocab_size: int,
        seq_len: int,
        generator: torch.Generator,
    ):
        super().__init__()
        n = cfg.approx_params(vocab_size, seq_len)
        check_memory(  # weights, gradients and Adam's two moments, in float32
            f"a GPT of ~{n:,} parameters (vocabulary {vocab_size:,}, d_model {cfg.d_model}, "
            f"{cfg.n_layers} layers) with its gradients and optimizer state",
            16 * n,
        )
        self.cfg, self.vocab_size, self.seq_len = cfg, vocab_size, seq_len
        D = cfg.d_model
        self.W_E = normal_param((vocab_size, D), fan_in_std(D, cfg.init_scale), generator)
        self.W_pos = (
            normal_param((seq_len, D), fan_in_std(D, cfg.init_scale), generator)
            if cfg.pos_embed == "learned"
            else None
        )
        self.hook_embed = HookPoint()
        self.blocks = nn.ModuleList(Block(cfg, generator) for _ in range(cfg.n_layers))
        self.ln_final = make_norm(cfg.norm, D)
        self.hook_final = HookPoint()
        self.W_U = (
            None
            if cfg.tied_embeddings
            else normal_param((D, vocab_size), fan_in_std(D, cfg.init_scale), generator)
        )
        self.hook_logits = HookPoint()

    def forward(
        self,
        tokens: Tensor | None = None,
        *,
        embeds: Tensor | None = None,
        last_only: bool = False,
        output: Literal["logits", "final"] = "logits",
    ) -> Tensor:
        """``tokens`` (B, T) int, or ``embeds`` (B, T, D) from a custom read-in.

        Returns logits (B, T, V), or the final normalised residual (B, T, D) when
        ``output="final"``; with ``last_only`` only the last position, T = 1.
        """
        # An ensemble's K members at once (see layers.py): every table has a leading K.
        stacked = any(w is not None and w.dim() == 3 for w in (self.W_E, self.W_pos, self.W_U))
        if embeds is not None:
            x = embeds  # (B, T, D)
        elif stacked:  # member k looks up tokens[k] in its own table
            members = torch.arange(len(self.W_E), device=tokens.device)
            x = self.W_E[members.view(-1, *(1,) * (tokens.dim() - 1)), tokens]
        else:
            x = self.W_E[tokens]
        T = x.shape[-2]
        if self.seq_len < T:
            raise ValueError(f"sequence of length {T} exceeds the context {self.seq_len}")
        if self.W_pos is not None:
            pos = self.W_pos[..., :T, :]
            x = x + (pos.unsqueeze(1) if stacked else pos)
        x = self.hook_embed(x)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, last_only=last_only and i == last)
        x = self.hook_final(self.ln_final(x))
        if output == "final":
            return x
        W_U = self.W_E.transpose(-1, -2) if self.W_U is None else self.W_U
        return self.hook_logits(project(x, W_U))  # (B, T, V)

    def sites(self) -> dict[str, HookPoint]:
        """Canonical site name → hook module (see the module docstring)."""
        out: dict[str, HookPoint] = {}
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                out[site_name(name)] = module
        return out

    def n_params(self, *, embeddings: bool = True) -> int:
        skip = set() if embeddings else {"W_E", "W_pos", "W_U"}
        return sum(p.numel() for n, p in self.named_parameters() if n not in skip)


def site_name(module_path: str) -> str:
    """``blocks.0.hook_attn_out`` → ``blocks.0.attn_out``; ``blocks.0.mixer.hook_pattern``
    → ``blocks.0.attn.pattern``; ``blocks.0.mlp.hook_post`` → ``blocks.0.mlp.post``."""
    parts = module_path.split(".")
    parts[-1] = parts[-1].removeprefix("hook_")
    return ".".join("attn" if p == "mixer" else p for p in parts)
