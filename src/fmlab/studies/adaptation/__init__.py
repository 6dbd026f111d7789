"""Adaptation: full fine-tuning vs LoRA vs linear probe vs LP-FT — what each changes.

A small GPT is pretrained in-lab on a synthetic language (the class-Markov language of
``representations``), exported exactly to a Hugging Face ``GPT2LMHeadModel``
(:mod:`fmlab.models.hf.export`) and adapted there — LoRA through ``peft`` — on two tasks
(:mod:`.task` describes them and the shift):

* **transfer** (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and
  Underperform Out-of-Distribution", ICLR): a token-classification head on a relabelled
  feature of pretraining; ID inputs use half the word classes, OOD inputs the other half.
  Methods: linear probe (LP), full fine-tuning (FT), LP-FT, last block only, LoRA.
* **domain** (Biderman et al. 2024, "LoRA Learns Less and Forgets Less", TMLR):
  continued LM training on a language with a new transition table; forgetting is the
  rise of the source language's loss. Full FT vs LoRA, each at its best learning rate.

Per method and seed: ID/OOD accuracy and loss, forgetting, trainable parameters (wall
times in ``artifacts/timings.json``); for full FT the update ΔW of every block matrix —
singular spectrum, effective rank, share of ‖ΔW‖² in its top r directions, overlap of its
top directions with LoRA's (Hu et al. 2022 §7) — and layer-wise CKA base vs adapted.

Claims (95 % t-intervals over seeds): LP-FT's OOD accuracy ≥ FT's, and FT's OOD gain over
LP is smaller than its ID gain (Kumar et al.: FT +2 % ID but −7 % OOD vs LP on average;
LP-FT +1 % ID, +10 % OOD vs FT); at equal steps LoRA's target loss is higher and its
forgetting lower than full FT's (Biderman et al.); full FT's ΔW puts most of its energy
(> 1/2) in its top r = 8 singular directions (Hu et al. 2022 §7: the update has a low
"intrinsic rank").
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, model_validator

from fmlab.claims import Claim
from fmlab.config import Config, execution_field
from fmlab.models import GPTConfig
from fmlab.stats import over_seed_rows
from fmlab.store import Run
from fmlab.studies.adaptation.figures import figures
from fmlab.studies.adaptation.methods import (
    METHODS,
    LoraSpec,
    Method,
    linear_shapes,
    resolve_targets,
)
from fmlab.studies.representations.task import ShiftConfig
from fmlab.study import study
from fmlab.train import TrainConfig

TRANSFER_LRS = {"lp": [1e-2, 3e-2, 1e-1], "ft": [1e-3], "lp-ft": [1e-3], "last-layer": [1e-3],
                "lora": [3e-3]}  # fmt: skip
DOMAIN_LRS = {"ft": [3e-4, 1e-3, 3e-3], "lora": [1e-3, 3e-3, 1e-2]}


class AdaptationConfig(Config):
    language: ShiftConfig = ShiftConfig()
    n_id_classes: int = Field(4, ge=1, description="word classes of ID inputs; OOD: the rest")
    model: GPTConfig = GPTConfig(n_layers=4, d_model=64, n_heads=4, d_mlp=256, act="gelu")
    pretrain: TrainConfig = TrainConfig(
        steps=1000, lr=3e-3, weight_decay=0.01, batch_size=32, warmup_steps=100, eval_every=100
    )
    finetune: TrainConfig = TrainConfig(
        steps=300, lr=1e-3, weight_decay=0.01, batch_size=32, eval_every=50
    )  # lr: each arm's own, from lrs / domain_lrs
    methods: list[Method] = Field(list(METHODS), min_length=1)
    lrs: dict[str, list[float]] = Field(
        TRANSFER_LRS, description="transfer task: learning rates per method (best by ID val)"
    )
    lora: LoraSpec = LoraSpec()
    domain: bool = Field(True, description="also run the domain task (full FT vs LoRA)")
    domain_lrs: dict[str, list[float]] = Field(
        DOMAIN_LRS, description="domain task: learning rates of ft and lora (best by val)"
    )
    energy_rank: int = Field(8, ge=1, description="r of the top-r energy share of ΔW")
    seeds: list[int] = Field([0, 1, 2, 3, 4], min_length=1)
    n_eval: int = Field(512, ge=8, description="held-out sequences per evaluation set")
    workers: int = execution_field(1, "processes; each runs one seed on 1 thread", ge=1)

    @model_validator(mode="after")
    def _check(self) -> AdaptationConfig:
        if self.n_id_classes >= self.language.n_classes:
            raise ValueError("n_id_classes must leave some classes for the OOD inputs")
        for name, table, need in (("lrs", self.lrs, self.methods),
                                  ("domain_lrs", self.domain_lrs, ["ft", "lora"])):  # fmt: skip
            unknown = sorted(set(table) - set(METHODS))
            if unknown:
                raise ValueError(f"{name}: unknown method(s) {unknown}; known: {list(METHODS)}")
            wanted = [*need, *(["lp"] if "lp-ft" in need else [])]
            if name == "domain_lrs" and not self.domain:
                wanted = []
            missing = [m for m in wanted if not table.get(m)]
            if missing:
                raise ValueError(f"{name} gives no learning rate for {missing}")
            if any(lr <= 0 for lrs in table.values() for lr in lrs):
                raise ValueError(f"{name}: learning rates must be > 0")
        if "lora" in self.methods or self.domain:
            resolve_targets(self.lora, linear_shapes(self.model.d_model, self.model.d_mlp))
        return self


SMOKE = AdaptationConfig(
    language=ShiftConfig(n_classes=4, tokens_per_class=4, seq_len=12),
    n_id_classes=2,
    model=GPTConfig(n_layers=2, d_model=16, n_heads=2, d_mlp=32, act="gelu"),
    pretrain=TrainConfig(steps=20, lr=3e-3, batch_size=8, eval_every=10),
    finetune=TrainConfig(steps=10, lr=1e-3, batch_size=8, eval_every=5),
    lrs={"lp": [1e-2], "ft": [1e-3], "lp-ft": [1e-3], "last-layer": [1e-3], "lora": [3e-3]},
    domain_lrs={"ft": [1e-3], "lora": [1e-3, 3e-3]},
    lora=LoraSpec(rank=2),
    energy_rank=2,
    seeds=[0, 1],
    n_eval=16,
)
QUICK = AdaptationConfig(workers=2)
PAPER = AdaptationConfig(  # wider, deeper, longer, full learning-rate sweeps: a GPU
    language=ShiftConfig(n_classes=16, tokens_per_class=16, seq_len=64),
    n_id_classes=8,
    model=GPTConfig(n_layers=8, d_model=256, n_heads=8, d_mlp=1024, act="gelu"),
    pretrain=TrainConfig(
        steps=20000, lr=1e-3, weight_decay=0.01, batch_size=64, warmup_steps=500,
        schedule="cosine", min_lr_ratio=0.1, eval_every=500,
    ),
    finetune=TrainConfig(steps=3000, lr=3e-4, weight_decay=0.01, batch_size=64, eval_every=250),
    lrs={"lp": [1e-3, 3e-3, 1e-2, 3e-2], "ft": [1e-4, 3e-4, 1e-3], "lp-ft": [1e-4, 3e-4, 1e-3],
         "last-layer": [1e-4, 3e-4, 1e-3], "lora": [3e-4, 1e-3, 3e-3]},
    domain_lrs={"ft": [1e-4, 3e-4, 1e-3], "lora": [3e-4, 1e-3, 3e-3, 1e-2]},
    lora=LoraSpec(rank=16),
    energy_rank=16,
    n_eval=2048,
)  # fmt: skip

CLAIMS = (
    Claim(
        "lp-ft-ood",
        "Kumar et al. 2022 (LP-FT +10 % OOD vs FT on average)",
        "LP-FT's OOD accuracy is at least full fine-tuning's: acc_OOD(LP-FT) − acc_OOD(FT) ≥ 0",
        "lp_ft_minus_ft_ood_acc",
        ">=",
        0.0,
        decide_by="ci",
    ),
    Claim(
        "ft-distorts-ood",
        "Kumar et al. 2022 (FT vs LP: +2 % ID, −7 % OOD on average)",
        "full fine-tuning's OOD gain over the linear probe is smaller than its ID gain: "
        "(acc_OOD(FT) − acc_OOD(LP)) − (acc_ID(FT) − acc_ID(LP)) < 0",
        "ft_ood_gain_minus_id_gain",
        "<",
        0.0,
        decide_by="ci",
    ),
    Claim(
        "lora-learns-less",
        "Biderman et al. 2024",
        "at equal steps (each at its best learning rate), LoRA's target loss is higher "
        "than full fine-tuning's: loss(LoRA) − loss(FT) > 0",
        "domain_lora_minus_ft_target_loss",
        ">",
        0.0,
        decide_by="ci",
    ),
    Claim(
        "lora-forgets-less",
        "Biderman et al. 2024",
        "at equal steps, LoRA's source-loss increase is lower than full fine-tuning's: "
        "forgetting(FT) − forgetting(LoRA) > 0",
        "domain_ft_minus_lora_forgetting",
        ">",
        0.0,
        decide_by="ci",
    ),
    Claim(
        "ft-update-low-rank",
        "Hu et al. 2022 §7",
        "full fine-tuning's ΔW is far from full rank: its top r singular directions (r = "
        "energy_rank, 8 in quick: 1/8 of the width) carry most (> 1/2) of ‖ΔW‖²_F, averaged "
        "over block matrices (transfer task)",
        "transfer_ft_dW_energy_top_r",
        ">",
        0.5,
        decide_by="ci",
    ),
)


def derived(row: dict[str, Any]) -> dict[str, Any]:
    """The claims' differences, per seed (None when a method did not run)."""
    g = row.get
    out: dict[str, Any] = {}
    if g("lp_ft_ood_acc") is not None and g("ft_ood_acc") is not None:
        out["lp_ft_minus_ft_ood_acc"] = row["lp_ft_ood_acc"] - row["ft_ood_acc"]
    if all(g(k) is not None for k in ("ft_ood_acc", "lp_ood_acc", "ft_id_acc", "lp_id_acc")):
        out["ft_ood_gain"] = row["ft_ood_acc"] - row["lp_ood_acc"]
        out["ft_id_gain"] = row["ft_id_acc"] - row["lp_id_acc"]
        out["ft_ood_gain_minus_id_gain"] = out["ft_ood_gain"] - out["ft_id_gain"]
    if g("domain_lora_target_loss") is not None:
        out["domain_lora_minus_ft_target_loss"] = (
            row["domain_lora_target_loss"] - row["domain_ft_target_loss"]
        )
        out["domain_ft_minus_lora_forgetting"] = (
            row["domain_ft_forgetting"] - row["domain_lora_forgetting"]
        )
    return out


@study(
    "adaptation",
    config=AdaptationConfig,
    presets={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    claims=CLAIMS,
    title="Adaptation: full fine-tuning vs LoRA vs linear probe vs LP-FT",
    citation="Kumar et al. 2022 (LP-FT, arXiv 2202.10054); Biderman et al. 2024 (LoRA learns "
    "less and forgets less, arXiv 2405.09673); Hu et al. 2022 (LoRA, arXiv 2106.09685); "
    "Kornblith et al. 2019 (CKA)",
    figures=figures,
    preset_notes={
        "smoke": "exercises the code in seconds",
        "quick": "4-layer GPT (d 64), 5 seeds, 300 adaptation steps; 24 min here beside "
        "another study",
        "paper": "8 layers, width 256, 3000 adaptation steps, learning-rate sweeps",
    },
)
def run(cfg: AdaptationConfig, run: Run) -> dict[str, Any]:
    from fmlab.studies.adaptation.train import run_seed
    from fmlab.train.pool import map_logged

    results = map_logged(run_seed, [(cfg, s) for s in cfg.seeds], cfg.workers, run, "seeds")
    for seed, (_, _, weights) in zip(cfg.seeds, results, strict=True):
        state = {k: torch.from_numpy(v) for k, v in weights.items()}
        run.save_weights(f"base_seed{seed}", state)  # `fmlab export` reads these
    run.save_json("timings", [t for _, timings, _ in results for t in timings])
    rows = [r | derived(r) for r, _, _ in results]
    keys = [k for k in rows[0] if all(k in r for r in rows)]
    out = over_seed_rows([{k: r[k] for k in keys} for r in rows])
    return out | {"n_seeds": len(cfg.seeds), "energy_rank": cfg.energy_rank}
