"""Mixture of experts: parameters without FLOPs, and collapse without a balancing loss
(Shazeer et al. 2017, "Outrageously large neural networks: the sparsely-gated
mixture-of-experts layer"; Fedus et al. 2021, "Switch Transformers").

On a synthetic language whose entropy rate is known exactly (a Zipfian Markov chain,
:mod:`fmlab.tasks.language`; the loss floor is its entropy rate), four models that differ
only in their feed-forward layers are trained with the same data, steps and seeds:

* ``dense_active`` — a dense MLP as wide as the k experts a token uses (equal active
  parameters and FLOPs per token to the MoE);
* ``moe`` — E experts, top-k routing, the Switch load-balancing loss;
* ``moe_no_balance`` — the same without the balancing loss;
* ``dense_total`` — a dense MLP as wide as all E experts together (equal total parameters).

The quick language is first order over 256 tokens: the next token depends on the current
one only, so a feed-forward layer has to hold one next-token distribution per token — a
lookup table that more parameters fill better (dense_total), and that a router can split
between experts by token at no extra compute per token (Shazeer et al.; Switch, §2).

Claim in one sentence: at equal active parameters the MoE reaches a lower loss than the
dense model, and without the balancing loss its router load is markedly less balanced.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from fmlab.claims import Claim
from fmlab.config import Config
from fmlab.device import place
from fmlab.models import GPTConfig
from fmlab.models.moe import MoEConfig
from fmlab.stats import over_seeds
from fmlab.store import Run
from fmlab.studies.moe.figures import figures
from fmlab.studies.moe.train import VariantResult, train_variant
from fmlab.study import study
from fmlab.tasks.language import LanguageConfig, make_language
from fmlab.train import TrainConfig

Variant = Literal["dense_active", "moe", "moe_no_balance", "dense_total"]
VARIANTS: tuple[str, ...] = ("dense_active", "moe", "moe_no_balance", "dense_total")


class MoEStudyConfig(Config):
    language: LanguageConfig = LanguageConfig(
        vocab_size=256, order=1, zipf_exponent=1.0, support=None, token_skew=1.0, seed=0
    )
    seq_len: int = Field(64, ge=2)
    model: GPTConfig = GPTConfig(d_model=64, n_layers=2, n_heads=4, d_mlp=64, act="gelu")
    moe: MoEConfig = MoEConfig(n_experts=8, top_k=1, d_expert=64, capacity_factor=1.25)
    variants: list[Variant] = Field(list(VARIANTS), min_length=1)
    train: TrainConfig = TrainConfig(
        steps=1000, lr=3e-3, schedule="cosine", warmup_steps=50, weight_decay=0.1,
        batch_size=32, eval_every=100,
    )  # fmt: skip
    eval_sequences: int = Field(256, ge=1, description="held-out sequences for loss and load")
    seeds: list[int] = Field([0, 1, 2], min_length=1)

    @model_validator(mode="after")
    def _check(self) -> MoEStudyConfig:
        if not (self.moe.d_expert or self.model.d_mlp):
            raise ValueError("set moe.d_expert or model.d_mlp: the experts' hidden width")
        return self


def eval_generator(cfg: MoEStudyConfig) -> torch.Generator:
    """A stream for the held-out sequences that no training seed shares."""
    state = np.random.SeedSequence([cfg.language.seed, 2**32 - 1]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0] % 2**63))


def variant_config(cfg: MoEStudyConfig, variant: str) -> GPTConfig:
    """The model of one variant: only the feed-forward layer differs."""
    width = cfg.moe.d_expert or cfg.model.d_mlp
    if variant == "dense_active":
        return cfg.model.model_copy(update={"d_mlp": cfg.moe.top_k * width, "moe": None})
    if variant == "dense_total":
        return cfg.model.model_copy(update={"d_mlp": cfg.moe.n_experts * width, "moe": None})
    moe = cfg.moe.model_copy(update={"d_expert": width})
    if variant == "moe_no_balance":
        moe = moe.model_copy(update={"balance_coef": 0.0})
    return cfg.model.model_copy(update={"moe": moe})


SMOKE = MoEStudyConfig(
    language=LanguageConfig(vocab_size=8, order=1),
    seq_len=8,
    model=GPTConfig(d_model=16, n_layers=1, n_heads=2, d_mlp=16),
    moe=MoEConfig(n_experts=4, top_k=1, d_expert=16),
    train=TrainConfig(steps=6, lr=3e-3, batch_size=8, eval_every=3),
    eval_sequences=16,
    seeds=[0, 1],
)
QUICK = MoEStudyConfig()
PAPER = MoEStudyConfig(  # Switch-Base scale is out of reach; a larger model, 64 experts
    language=LanguageConfig(vocab_size=4096, order=1, zipf_exponent=1.0, token_skew=1.0),
    seq_len=256,
    model=GPTConfig(d_model=512, n_layers=8, n_heads=8, d_mlp=2048, act="gelu"),
    moe=MoEConfig(n_experts=64, top_k=1, d_expert=2048, capacity_factor=1.25),
    train=TrainConfig(
        steps=50_000,
        lr=1e-3,
        schedule="cosine",
        warmup_steps=1000,
        weight_decay=0.1,
        batch_size=64,
        eval_every=1000,
    ),
    eval_sequences=1024,
)

SHAZEER, SWITCH = "Shazeer et al. 2017", "Fedus et al. 2021 (Switch)"
CLAIMS = (
    Claim(
        "moe-beats-dense-at-equal-active-params",
        f"{SHAZEER}; {SWITCH}",
        "the MoE reaches a lower held-out loss than the dense model with the same active "
        "parameters (difference per seed, 95% CI above 0)",
        "moe_gain_over_dense_active",
        ">",
        0.0,
        decide_by="ci",
    ),
    Claim(
        "balancing-loss-fits-capacity",
        SWITCH,
        "with the balancing loss the busiest expert gets at most the capacity factor (1.25) "
        "times its fair share of tokens",
        "moe_max_load_ratio",
        "<=",
        1.25,
        decide_by="ci",
    ),
    Claim(
        "unbalanced-without-balancing-loss",
        SHAZEER,
        "without the balancing loss the coefficient of variation of the expert load is at "
        "least twice that with it (geometric mean over seeds; Shazeer et al., appendix A: "
        "without balancing losses the load concentrates on a few experts)",
        "load_cv_ratio",
        ">=",
        2.0,
        decide_by="ci",
    ),
)


def summarise(cfg: MoEStudyConfig, results: list[VariantResult]) -> dict[str, Any]:
    by = {(r.variant, r.seed): r for r in results}

    def values(variant: str, key: str) -> list[float]:
        return [getattr(by[(variant, s)], key) for s in cfg.seeds if (variant, s) in by]

    out: dict[str, Any] = {"n_seeds": len(cfg.seeds)}
    for v in cfg.variants:
        out |= over_seeds(f"{v}_loss", values(v, "loss"))
        out |= over_seeds(f"{v}_excess_loss", values(v, "excess_loss"))
        out[f"{v}_params"] = values(v, "params")[0]
        out[f"{v}_active_params"] = values(v, "active_params")[0]
        if v.startswith("moe"):
            for key in ("load_cv", "max_load_ratio", "load_entropy", "dropped_fraction"):
                out |= over_seeds(f"{v}_{key}", values(v, key))
    present = set(cfg.variants)
    if {"moe", "dense_active"} <= present:
        gain = [
            d - m
            for d, m in zip(values("dense_active", "loss"), values("moe", "loss"), strict=True)
        ]
        out |= over_seeds("moe_gain_over_dense_active", gain)
    if {"moe", "dense_total"} <= present:
        gap = [
            m - d for m, d in zip(values("moe", "loss"), values("dense_total", "loss"), strict=True)
        ]
        out |= over_seeds("moe_gap_to_dense_total", gap)
    if {"moe", "moe_no_balance"} <= present:
        ratios = [
            u / max(b, 1e-12)
            for u, b in zip(
                values("moe_no_balance", "load_cv"), values("moe", "load_cv"), strict=True
            )
        ]
        out |= over_seeds("load_cv_ratio", ratios, log=True)
    out["entropy_rate"] = results[0].entropy_rate
    return out


@study(
    "moe",
    config=MoEStudyConfig,
    presets={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    claims=CLAIMS,
    title="Mixture of experts: parameters without FLOPs, collapse without balancing",
    citation="Shazeer et al. 2017 (arXiv 1701.06538); Fedus et al. 2021 (Switch, arXiv "
    "2101.03961); Lepikhin et al. 2021 (GShard); Zoph et al. 2022 (ST-MoE)",
    figures=figures,
    preset_notes={
        "quick": "Markov language V=256 order 1, T=64; d_model 64, 2 layers; 8 experts of "
        "64, top-1, capacity 1.25; 1000 steps of batch 32; 3 seeds",
    },
)
def run(cfg: MoEStudyConfig, run: Run) -> dict[str, Any]:
    language = make_language(cfg.language)
    eval_tokens = place(language.sample(cfg.eval_sequences, cfg.seq_len + 1, eval_generator(cfg)))
    results = [
        train_variant(
            variant_config(cfg, v), v, cfg.train, language, eval_tokens, cfg.seq_len, s, run
        )
        for v in cfg.variants
        for s in cfg.seeds
    ]
    run.save_json("results", [r.as_dict() for r in results])
    return summarise(cfg, results)
