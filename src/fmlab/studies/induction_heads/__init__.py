"""Induction heads and the in-context learning phase change (Olsson et al. 2022,
"In-context Learning and Induction Heads", Transformer Circuits Thread; arXiv 2209.11895).

Olsson et al. find that transformers acquire most of their in-context learning (lower
loss late in the context than early) in a sudden phase change early in training, at
the same moment as *induction heads* form: heads that attend from a token to the token
that followed its previous occurrence ("prefix matching") and copy it. One-layer
attention-only models, which cannot compose a previous-token head with a matching
head, show neither.

Claim in one sentence: a 2-layer attention-only model's loss on repeated tokens and its
ICL score drop suddenly when a head with prefix-matching score >= 0.5 appears, and most of
its ICL score is gained then; a 1-layer model never gets a head above 0.2.

Data: random tokens with one random segment copied to a later random place
(:mod:`fmlab.tasks.induction`), so only induction predicts the copy exactly. Measured
every ``eval_every`` steps: loss on the repeated tokens, the ICL score (mean loss at
positions >= 3T/4 minus positions 1..T/8-1, Olsson's token 500 minus token 50 scaled to T),
and every head's prefix-matching score on repeated random sequences. Transitions are
located with :func:`fmlab.fit.fit_changepoint` and :class:`fmlab.fit.TransitionFit`.

Quick preset: FEASIBILITY.md's setting (attention-only, d_model 64, 4 heads, vocab 64,
context 64, batch 64, AdamW 3e-3, weight decay 0.01), 2,000 steps, 1 and 2 layers x 2
seeds, with a weak skip-bigram background (scale 0.5): on uniform tokens the core GPT
learned a positional "bigram memory" instead of an induction head (docs/icl.md).
Measured with 1 torch thread on the 2 shared cores (load 5-6): 904 s wall, 398 CPU-s
(129 per 2-layer and 74 per 1-layer model); the phase change came at steps 625 and
1,150 (ICL-score changepoints 650 and 1,150); five claims hold, "majority of ICL in the
phase change" does not (0.41, 0.46).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from fmlab.claims import Claim
from fmlab.config import Config
from fmlab.device import place
from fmlab.models import GPTConfig
from fmlab.store import Run
from fmlab.studies.induction_heads.figures import figures
from fmlab.studies.induction_heads.summary import summarise
from fmlab.studies.induction_heads.train import make_probes, train_model
from fmlab.study import study
from fmlab.tasks.induction import InductionConfig
from fmlab.train import TrainConfig


class InductionStudyConfig(Config):
    task: InductionConfig = InductionConfig()
    model: GPTConfig = GPTConfig(d_model=64, n_heads=4, d_mlp=0, n_layers=2)
    layers: list[int] = Field([1, 2], description="depths to train (n_layers of the model)")
    train: TrainConfig = TrainConfig(
        steps=2000, lr=3e-3, weight_decay=0.01, batch_size=64, eval_every=25
    )
    seeds: list[int] = Field([0, 1], min_length=1)
    n_eval: int = Field(256, ge=2, description="training-distribution sequences scored")
    n_probe: int = Field(64, ge=1, description="repeated random sequences for prefix matching")
    eval_seed: int = Field(10_000)
    icl_early_end: int | None = Field(
        None, ge=2, description="ICL score: early band = positions 1 .. this - 1"
    )
    icl_late_start: int | None = Field(None, ge=1, description="ICL score: positions >= this")

    @model_validator(mode="after")
    def _check(self) -> InductionStudyConfig:
        if self.model.d_mlp != 0 or self.model.moe is not None:
            raise ValueError("model.d_mlp must be 0: Olsson et al.'s models are attention-only")
        if self.model.mixer.kind != "attention":
            raise ValueError("model.mixer must be 'attention' (prefix matching reads patterns)")
        if 1 not in self.layers or 2 not in self.layers:
            raise ValueError(
                f"layers must include 1 and 2 (the claims compare them); got {self.layers}"
            )
        if self.task.seq_len // 2 > self.task.vocab_size:
            raise ValueError(
                "prefix matching uses repeated sequences of seq_len/2 distinct tokens: "
                f"need task.vocab_size >= {self.task.seq_len // 2}"
            )
        early = self.icl_early_end or max(2, self.task.seq_len // 8)
        late = self.icl_late_start or 3 * self.task.seq_len // 4
        if not early <= late < self.task.seq_len - 1:  # loss positions run to seq_len - 2
            raise ValueError(
                f"need icl_early_end ({early}) <= icl_late_start ({late}) < task.seq_len - 1"
            )
        return self


SMOKE = InductionStudyConfig(
    task=InductionConfig(vocab_size=16, seq_len=16, min_segment=2, max_segment=8),
    model=GPTConfig(d_model=16, n_heads=2, d_mlp=0),
    train=TrainConfig(steps=20, lr=3e-3, weight_decay=0.01, batch_size=16, eval_every=5),
    seeds=[0],
    n_eval=16,
    n_probe=8,
)
QUICK = InductionStudyConfig()
PAPER = InductionStudyConfig(  # Olsson et al.'s small attention-only models, on synthetic data
    task=InductionConfig(vocab_size=2048, seq_len=512, min_segment=16, max_segment=128),
    model=GPTConfig(d_model=768, n_heads=12, d_mlp=0, n_layers=2),
    layers=[1, 2, 3],
    train=TrainConfig(
        steps=20_000, lr=1e-3, weight_decay=0.01, warmup_steps=500, batch_size=32, eval_every=200
    ),
    seeds=[0, 1, 2],
    icl_early_end=50,
    icl_late_start=500,
)

SOURCE = "Olsson et al. 2022"
CLAIMS = (
    Claim(
        "two-layer-induction-head",
        SOURCE,
        "in every seed the 2-layer model ends with a head whose prefix-matching score is "
        ">= 0.5: most of its attention goes to the token after the previous occurrence "
        "(uniform attention scores ~1/position)",
        "prefix_max_2l_min",
        ">=",
        0.5,
    ),
    Claim(
        "coincident-phase-change",
        SOURCE,
        "in every seed the changepoints of the 2-layer model's loss on repeated tokens and "
        "of its best prefix-matching score lie within 5% of training of each other",
        "changepoint_gap_frac_2l_max",
        "<=",
        0.05,
    ),
    Claim(
        "icl-rises-with-the-head",
        SOURCE,
        "in every seed the changepoints of the 2-layer model's ICL score and of its best "
        "prefix-matching score lie within 5% of training of each other",
        "icl_changepoint_gap_frac_2l_max",
        "<=",
        0.05,
    ),
    Claim(
        "icl-acquired-in-phase-change",
        SOURCE,
        "in every seed the majority of the 2-layer model's ICL-score gain over training "
        "happens while the induction head forms (10-90% of its prefix-score rise)",
        "icl_gain_in_window_2l_min",
        ">=",
        0.5,
    ),
    Claim(
        "one-layer-no-induction-head",
        SOURCE,
        "in every seed the 1-layer model's best prefix-matching score stays below 0.2",
        "prefix_max_1l_max",
        "<",
        0.2,
    ),
    Claim(
        "one-layer-less-icl",
        SOURCE,
        "in every seed the 1-layer model ends with a worse (higher) ICL score than the "
        "2-layer model trained from the same seed",
        "icl_gap_1l_vs_2l_min",
        ">",
        0.0,
    ),
)


@study(
    "induction-heads",
    config=InductionStudyConfig,
    presets={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    claims=CLAIMS,
    title="Induction heads and the in-context learning phase change",
    citation="Olsson et al. 2022 (arXiv 2209.11895); Elhage et al. 2021 (A Mathematical "
    "Framework for Transformer Circuits)",
    figures=figures,
    preset_notes={
        "quick": "attention-only, d_model 64, 4 heads, vocab 64, context 64, batch 64, "
        "AdamW 3e-3, 2,000 steps; 1 and 2 layers x 2 seeds",
        "paper": "Olsson et al.'s small-model width (768, 12 heads), 1-3 layers, ICL score "
        "at tokens 500 vs 50; synthetic repeated segments instead of their text corpus",
    },
)
def run(cfg: InductionStudyConfig, run: Run) -> dict[str, Any]:
    probes = place(make_probes(cfg))
    trained = [
        train_model(cfg, n_layers, seed, probes, run)
        for n_layers in sorted(cfg.layers, reverse=True)
        for seed in cfg.seeds
    ]
    return summarise(cfg, trained, probes, run)
