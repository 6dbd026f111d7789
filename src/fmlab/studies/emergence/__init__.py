"""Emergent abilities: a property of the model or of the metric? (Schaeffer, Miranda &
Koyejo 2023; Wei et al. 2022), and calibration against scale (Kadavath et al. 2022).

A family of GPTs that differ along one config axis, ``widths`` (``d_model``; heads and MLP
scale with it; ~1.9 decades of non-embedding parameters in ``quick``), learns integer
arithmetic (:mod:`.arithmetic`: n-digit addition and multiplication, fixed-width answers
of L digits) mixed with text of a synthetic Markov language. The seeds of each width train
as one batched ensemble (:mod:`.train`). The same outputs on fixed evaluation problems are
scored by discontinuous metrics (exact match, multiple-choice accuracy) and continuous ones
(per-token accuracy, token edit distance, Brier score, target log-probability;
:mod:`.metrics`), and each curve against parameters is classified by
:mod:`fmlab.fit.abrupt`: a sigmoid transition in log N against a smooth power law in the
error, by leave-one-out error, with a bootstrap CI over seeds and problems.

Claim in one sentence: exact match rises in a way a transition predicts better than a
power law while per-token accuracy and log-probability of the same outputs do not;
exact match equals the product of per-position accuracies model by model; the abruptness
grows with the answer length L; larger models have lower ECE. docs/emergence.md has the
protocol, the results and what fell short.
"""

from __future__ import annotations

from typing import Any

from fmlab.claims import Claim
from fmlab.models import GPTConfig
from fmlab.store import Run
from fmlab.studies.emergence.config import EmergenceConfig
from fmlab.studies.emergence.figures import figures
from fmlab.studies.emergence.summary import summarise
from fmlab.studies.emergence.train import train_width
from fmlab.study import study
from fmlab.tasks.language import LanguageConfig
from fmlab.train import TrainConfig
from fmlab.train.pool import map_logged

SMOKE = EmergenceConfig(
    tasks=["add1", "add2"],
    main_task="add2",
    length_tasks=["add1", "add2"],
    language=LanguageConfig(vocab_size=8, order=1),
    widths=[4, 6, 8, 11, 16, 23],
    seq_len=12,
    train=TrainConfig(steps=20, lr=1e-2, batch_size=16, eval_every=10, warmup_steps=2),
    seeds=[0, 1],
    eval_problems=16,
    n_bootstrap=4,
)
QUICK = EmergenceConfig(
    tasks=["add1", "add2", "add3", "mul1"],
    main_task="add2",
    length_tasks=["add1", "add2", "add3"],
    widths=[6, 9, 13, 19, 27, 40, 56],
    seq_len=12,
    train=TrainConfig(
        steps=1200,
        lr=1e-2,
        batch_size=64,
        eval_every=100,
        warmup_steps=100,
        schedule="cosine",
        min_lr_ratio=0.1,
        grad_clip=1.0,
    ),
    n_bootstrap=100,
)
PAPER = EmergenceConfig(  # BIG-bench-like span: ~3 decades, 3-5 digit arithmetic, 5 seeds
    tasks=["add2", "add3", "add4", "add5", "mul2", "mul3"],
    main_task="add4",
    length_tasks=["add2", "add3", "add4", "add5"],
    model=GPTConfig(n_layers=4, d_model=64, n_heads=4, d_mlp=256, act="gelu"),
    widths=[8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256],
    seq_len=24,
    train=TrainConfig(
        steps=20_000,
        lr=1e-2,
        batch_size=256,
        eval_every=500,
        warmup_steps=500,
        schedule="cosine",
        min_lr_ratio=0.1,
        grad_clip=1.0,
    ),
    seeds=[0, 1, 2, 3, 4],
    eval_problems=2000,
    n_bootstrap=1000,
    workers=8,
)

SOURCE = "Schaeffer et al. 2023"
CLAIMS = (
    Claim(
        "em-abrupt",
        f"{SOURCE} §3, fig. 2; Wei et al. 2022 fig. 2",
        "exact match on the main task rises in a way a sigmoid transition in log N predicts "
        "better than a smooth power law: log(RMSE_power / RMSE_transition), leave-one-out "
        "over sizes, is > 0 (95% bootstrap CI over seeds and problems)",
        "em_log_ratio",
        ">",
        0.0,
        decide_by="ci",
    ),
    Claim(
        "token-accuracy-smooth",
        f"{SOURCE} §3, fig. 2 (right)",
        "per-token accuracy of the same outputs is not better predicted by the transition: "
        "the lower end of the 95% bootstrap CI of its log RMSE ratio is <= 0",
        "tok_acc_log_ratio_ci_low",
        "<=",
        0.0,
    ),
    Claim(
        "logprob-smooth",
        f"{SOURCE} §3",
        "the target log-probability is not better predicted by the transition either: the "
        "lower end of the 95% bootstrap CI of its log RMSE ratio is <= 0",
        "logp_log_ratio_ci_low",
        "<=",
        0.0,
    ),
    Claim(
        "em-is-product",
        f"{SOURCE} §2, eq. 2",
        "exact match equals the product of per-position (teacher-forced) accuracies, model "
        "by model: every width's 95% CI over seeds of EM - Π_i acc_i contains 0 (the largest "
        "distance of a CI from 0 is 0)",
        "em_prod_max_ci_off0",
        "<=",
        0.0,
    ),
    Claim(
        "abruptness-grows-with-L",
        f"{SOURCE} §3, fig. 3",
        "exact match's abruptness (its log RMSE ratio) is larger for the longest answers of "
        "length_tasks than for the shortest (95% bootstrap CI of the difference > 0)",
        "abrupt_long_minus_short",
        ">",
        0.0,
        decide_by="ci",
    ),
    Claim(
        "larger-better-calibrated",
        "Kadavath et al. 2022 §3, fig. 4",
        "ECE of the multiple-choice answer probabilities falls with size: its slope per "
        "decade of parameters is < 0 (95% CI over seeds)",
        "ece_slope_per_decade",
        "<",
        0.0,
        decide_by="ci",
    ),
)


@study(
    "emergence",
    config=EmergenceConfig,
    presets={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    claims=CLAIMS,
    title="Emergent abilities: the same outputs under discontinuous and continuous metrics",
    citation="Schaeffer, Miranda & Koyejo 2023 (arXiv 2304.15004); Wei et al. 2022 "
    "(arXiv 2206.07682); Kadavath et al. 2022 (arXiv 2207.05221); Lee et al. 2023 "
    "(arXiv 2307.03381)",
    figures=figures,
    preset_notes={
        "smoke": "6 tiny widths, 20 steps, 2 seeds: exercises the code only",
        "quick": "7 widths (d 6-56, ~1.9 decades of N) x 3 seeds batched, 1-3 digit sums",
        "paper": "11 widths (~3 decades), 4 layers, 2-5 digit arithmetic, 5 seeds",
    },
)
def run(cfg: EmergenceConfig, run: Run) -> dict[str, Any]:
    results = map_logged(
        train_width,
        [(cfg, w) for w in cfg.widths],
        cfg.workers,
        run,
        "widths",
        cost=lambda job: 1 + job[1] ** 2 / 400,
    )
    run.save_json("timing", {f"d{r['width']}_cpu_s": r["cpu_s"] for r in results})
    out = summarise(cfg, results)
    run.save_json("emergence", out["artifacts"])
    return out["metrics"]
