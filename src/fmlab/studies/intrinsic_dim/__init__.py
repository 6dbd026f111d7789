"""Intrinsic dimension of fine-tuning: how few random directions suffice?

Li et al. 2018 ("Measuring the Intrinsic Dimension of Objective Landscapes", ICLR) train
only θ = θ₀ + P θ_d with θ_d in a random d-dimensional subspace (P fixed) and call the
smallest d reaching 90 % of ordinary training's performance d90. Aghajanyan et al. 2021
("Intrinsic Dimensionality Explains the Effectiveness of Language Model Fine-Tuning",
ACL) apply it to fine-tuning pretrained language models: d90 is orders of magnitude
below the parameter count, it *falls as pretraining proceeds* (their Fig. 1: RoBERTa
checkpoints along pretraining), and a pretrained model's d90 is far below a randomly
initialised one's.

Here a small GPT is pretrained on the class-Markov language of ``representations``
(:mod:`fmlab.studies.adaptation.task`), and its weights are kept at several pretraining
steps (step 0 = the random init). Each kept model gets a linear head and is fine-tuned
on a classification task over the same language — at each position, the most likely
class of the ``adaptation`` study's relabelled rule — fully (the reference accuracy), and
in random subspaces of growing d (:mod:`.subspace`: a dense Gaussian P while D·d is
small, Fastfood above; everything, head included, in the subspace, as in Li et al.).

A search that never reaches the threshold is censored (d90 > every d tried): its mean
is "not reached", and the comparisons use its lower bound only where that makes their
verdict conservative (:func:`summarise`).

Claims (95 % t-intervals over seeds, on log d90): d90/D < 0.05 for the fully pretrained
model (Li et al. 2018 measure d90/D between 0.4 % and ~5 % for their smallest networks;
Aghajanyan et al. far less for large ones); d90 falls with pretraining steps (slope of
log d90 against log step < 0); d90(pretrained) / d90(random init) < 1.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from fmlab.claims import Claim
from fmlab.config import Config, execution_field
from fmlab.models import GPTConfig
from fmlab.stats import over_seeds
from fmlab.store import Run
from fmlab.studies.intrinsic_dim.figures import figures
from fmlab.studies.representations.task import ShiftConfig
from fmlab.study import study
from fmlab.train import TrainConfig


class IntrinsicDimConfig(Config):
    language: ShiftConfig = ShiftConfig()
    model: GPTConfig = GPTConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=128, act="gelu")
    pretrain: TrainConfig = TrainConfig(
        steps=1000, lr=3e-3, weight_decay=0.01, batch_size=32, warmup_steps=100, eval_every=50
    )
    checkpoints: list[int] = Field(
        [0, 50, 150, 400, 1000], min_length=2, description="pretraining steps fine-tuned (0: init)"
    )
    finetune: TrainConfig = TrainConfig(steps=300, lr=1e-3, batch_size=32, eval_every=100)
    finetune_lrs: list[float] = Field(
        [1e-3, 3e-3, 1e-2], min_length=1, description="full FT: the best by validation accuracy"
    )
    subspace_lr: float = Field(3e-2, gt=0, description="Adam's learning rate for θ_d")
    projection: Literal["auto", "dense", "fastfood"] = "auto"
    dense_max: int = Field(2**21, ge=1, description="auto: dense P while D·d ≤ this")
    d_start: int = Field(16, ge=1)
    d_factor: int = Field(4, ge=2, description="the search multiplies d by this")
    threshold: float = Field(0.9, gt=0, le=1, description="d90: this fraction of full FT")
    seeds: list[int] = Field([0, 1, 2], min_length=1)
    n_eval: int = Field(512, ge=8)
    workers: int = execution_field(1, "processes; each runs one seed on 1 thread", ge=1)

    @model_validator(mode="after")
    def _check(self) -> IntrinsicDimConfig:
        every, steps = self.pretrain.eval_every, self.pretrain.steps
        bad = [c for c in self.checkpoints if c > steps or (c % every and c != steps)]
        if bad:
            raise ValueError(
                f"checkpoints {bad} are not pretraining steps the loop stops at "
                f"(multiples of pretrain.eval_every={every} up to pretrain.steps={steps})"
            )
        if 0 not in self.checkpoints or steps not in self.checkpoints:
            raise ValueError(f"checkpoints must include 0 (random init) and {steps} (the end)")
        return self


SMOKE = IntrinsicDimConfig(
    language=ShiftConfig(n_classes=4, tokens_per_class=4, seq_len=12),
    model=GPTConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, act="gelu"),
    pretrain=TrainConfig(steps=20, lr=3e-3, batch_size=8, eval_every=10),
    checkpoints=[0, 10, 20],
    finetune=TrainConfig(steps=10, lr=1e-3, batch_size=8, eval_every=5),
    finetune_lrs=[1e-3],
    d_start=64,
    d_factor=16,
    seeds=[0, 1],
    n_eval=16,
)
QUICK = IntrinsicDimConfig(workers=2)
PAPER = IntrinsicDimConfig(  # a bigger model, longer training, finer search: a GPU
    language=ShiftConfig(n_classes=16, tokens_per_class=16, seq_len=64),
    model=GPTConfig(n_layers=6, d_model=256, n_heads=8, d_mlp=1024, act="gelu"),
    pretrain=TrainConfig(steps=20000, lr=1e-3, weight_decay=0.01, batch_size=64,
                         warmup_steps=500, schedule="cosine", min_lr_ratio=0.1, eval_every=500),
    checkpoints=[0, 500, 1500, 5000, 20000],
    finetune=TrainConfig(steps=2000, lr=3e-4, batch_size=64, eval_every=250),
    finetune_lrs=[1e-4, 3e-4, 1e-3, 3e-3],
    d_factor=2,
    seeds=[0, 1, 2, 3, 4],
    n_eval=2048,
)  # fmt: skip

CLAIMS = (
    Claim(
        "d90-much-below-params",
        "Li et al. 2018 (d90/D 0.4 %–5 % for their small networks); Aghajanyan et al. 2021",
        "the fully pretrained model's d90 is a small fraction of its parameter count: "
        "d90 / D < 0.05",
        "d90_fraction_pretrained",
        "<",
        0.05,
        decide_by="ci",
    ),
    Claim(
        "d90-falls-with-pretraining",
        "Aghajanyan et al. 2021, Fig. 1",
        "d90 falls as pretraining proceeds: slope of log d90 against log pretraining step "
        "(over the pretrained checkpoints; an early one that never reached the threshold "
        "enters at its lower bound, which only flattens the slope) < 0",
        "d90_log_slope",
        "<",
        0.0,
        decide_by="ci",
    ),
    Claim(
        "pretrained-below-random",
        "Aghajanyan et al. 2021",
        "a pretrained model's d90 is below a randomly initialised one's: "
        "d90(pretrained) / d90(random init) < 1 (a random init that never reached the "
        "threshold enters at its lower bound, the largest d tried: the ratio's upper bound)",
        "d90_ratio_pretrained_random",
        "<",
        1.0,
        decide_by="ci",
    ),
)


def slope(steps: list[int], d90s: list[float | None]) -> float | None:
    """Least-squares slope of log d90 on log step (None if any d90 is missing)."""
    if any(d is None for d in d90s) or len(steps) < 2:
        return None
    return float(np.polyfit(np.log(steps), np.log(d90s), 1)[0])


def lower_bound(res: dict[str, Any], threshold: float) -> float | None:
    """For a search that never reached ``threshold`` × full FT: the largest d it tried
    (every d tried missed, so d90 > it); None when nothing was tried."""
    missed = [int(d) for d, acc in res["tried"].items() if acc < threshold * res["full_acc"]]
    return float(max(missed)) if missed else None


def censored_slope(steps: list[int], d90s: list[float | None], bounds: list[float | None]):
    """``slope`` with unreached d90s replaced by their lower bounds where that can only
    make the slope *less* negative (checkpoints below the mean log step: their weight in
    the least-squares slope is negative), so ``< 0`` stays a conservative verdict; None
    if an unreached d90 sits elsewhere."""
    x = np.log(steps)
    filled = []
    for xi, d, b in zip(x, d90s, bounds, strict=True):
        if d is None and (b is None or xi >= x.mean()):
            return None
        filled.append(d if d is not None else b)
    return slope(steps, filled)


def summarise(cfg: IntrinsicDimConfig, results: list[dict]) -> dict[str, Any]:
    """A search that never reached the threshold (d90 None) is *censored*: d90 exceeds
    every d it tried. The d90 means keep None ("not reached"); the two comparisons use
    the lower bound only where it makes their verdict conservative — the random init's
    d90 in the ratio (the ratio's upper bound), early checkpoints in the slope
    (:func:`censored_slope`) — and report how many seeds were censored."""
    last, first = max(cfg.checkpoints), 0
    pre = [c for c in sorted(cfg.checkpoints) if c > 0]
    bound = lambda r, c: lower_bound(r[c], cfg.threshold)  # noqa: E731
    out: dict[str, Any] = {}
    for c in sorted(cfg.checkpoints):
        out |= over_seeds(f"d90_step{c}", [r[c]["d90"] for r in results], log=True)
        out |= over_seeds(f"full_acc_step{c}", [r[c]["full_acc"] for r in results])
        out[f"d90_step{c}_censored"] = sum(r[c]["d90"] is None for r in results)
    n_params = results[0][last]["n_params"]
    frac = [None if r[last]["d90"] is None else r[last]["d90"] / n_params for r in results]
    ratio = []
    for r in results:
        init = r[first]["d90"] if r[first]["d90"] is not None else bound(r, first)
        ratio.append(None if r[last]["d90"] is None or init is None else r[last]["d90"] / init)
    slopes = [censored_slope(pre, [r[c]["d90"] for c in pre], [bound(r, c) for c in pre])
              for r in results]  # fmt: skip
    out |= over_seeds("d90_fraction_pretrained", frac, log=True)
    out |= over_seeds("d90_ratio_pretrained_random", ratio, log=True)
    out |= over_seeds("d90_log_slope", slopes)
    return out | {"n_params": n_params, "n_seeds": len(cfg.seeds),
                  "d_resolution": math.sqrt(cfg.d_factor) if cfg.d_factor > 2 else 2.0}  # fmt: skip


@study(
    "intrinsic-dim",
    config=IntrinsicDimConfig,
    presets={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    claims=CLAIMS,
    title="Intrinsic dimension of fine-tuning along pretraining",
    citation="Li et al. 2018 (arXiv 1804.08838); Aghajanyan et al. 2021 (arXiv 2012.13255); "
    "Le et al. 2013 (Fastfood)",
    figures=figures,
    preset_notes={
        "smoke": "exercises the code in seconds",
        "quick": "2-layer GPT (d 32), 5 pretraining checkpoints, 3 seeds, d ×4 then bisected; "
        "22 min here beside another study",
        "paper": "6 layers, width 256, 5 seeds, d doubled each step",
    },
)
def run(cfg: IntrinsicDimConfig, run: Run) -> dict[str, Any]:
    from fmlab.studies.intrinsic_dim.train import run_seed
    from fmlab.train.pool import map_logged

    results = map_logged(run_seed, [(cfg, s) for s in cfg.seeds], cfg.workers, run, "seeds")
    run.save_json("search", [{str(c): {**res, "tried": {str(d): a for d, a in res["tried"].items()}}
                              for c, res in r.items()} for r in results])  # fmt: skip
    return summarise(cfg, results)
