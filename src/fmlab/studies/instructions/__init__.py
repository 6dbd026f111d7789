"""Instruction tuning: does training on more task clusters make a model follow unseen
instructions? (FLAN, Wei et al. 2022; T0, Sanh et al. 2022.)

Tasks are named by instructions made of primitive tokens (:mod:`.task`): string
transformations and digitwise arithmetic (``reverse``, ``sort``, ``swap``, ``rotate a``,
``add a``, ``mul a``) and compositions of two (``rotate 2 then add 3``). A cluster is an
unordered pair of families. Per seed, fmlab's GPT is trained with the same number of
examples on the single primitives plus compositions from k training clusters (k = 0 is
the base model: primitives only), all k as one batched ensemble (:mod:`.train`), then
evaluated zero-shot by greedy decoding (:mod:`.evaluate`) on held-out clusters and on the
training clusters' untrained order.

Claim in one sentence: held-out-cluster accuracy rises with the number of training
clusters (slope against log2 k > 0), the model trained on one cluster with the same
number of examples does worse on the held-out clusters than the one trained on all, and
the instruction-tuned model follows a composition in an order it never saw better than
the base model. docs/instructions.md has the protocol and where the small scale departs.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from fmlab.claims import Claim
from fmlab.config import Config
from fmlab.models import GPTConfig
from fmlab.store import Run
from fmlab.studies.instructions.evaluate import accuracies
from fmlab.studies.instructions.figures import figures
from fmlab.studies.instructions.summary import summarise
from fmlab.studies.instructions.task import clusters, make_split
from fmlab.studies.instructions.train import members_of, train_members
from fmlab.study import study
from fmlab.train import TrainConfig

N_CLUSTERS = len(clusters())


class InstructionsConfig(Config):
    length: int = Field(4, ge=2, le=9, description="digits per string")
    n_heldout: int = Field(5, ge=1, le=N_CLUSTERS - 2, description="clusters never trained")
    ks: list[int] = Field(
        [0, 1, 3, 10],
        min_length=3,
        description="numbers of training clusters, one model each per seed (0: the base)",
    )
    single_frac: float = Field(
        0.5, gt=0, lt=1, description="share of single primitives in a k > 0 model's batches"
    )
    model: GPTConfig = GPTConfig(n_layers=2, d_model=64, n_heads=4, d_mlp=256)
    train: TrainConfig = TrainConfig(
        steps=1000,
        lr=3e-3,
        batch_size=64,
        eval_every=100,
        warmup_steps=100,
        schedule="cosine",
        min_lr_ratio=0.1,
    )
    seeds: list[int] = Field([0, 1, 2, 3, 4], min_length=1)
    n_eval: int = Field(256, ge=8, description="rows per evaluation set and member")
    eval_chunk: int = Field(256, ge=1, description="rows decoded at once")

    @model_validator(mode="after")
    def _check(self) -> InstructionsConfig:
        n_train = N_CLUSTERS - self.n_heldout
        if sorted(set(self.ks)) != list(self.ks):
            raise ValueError(f"ks must be increasing and distinct: {self.ks}")
        if self.ks[0] != 0 or self.ks[1] != 1:
            raise ValueError(f"ks must start 0, 1 (the base and the single cluster): {self.ks}")
        if self.ks[-1] > n_train:
            raise ValueError(
                f"ks go up to {self.ks[-1]} clusters, but only {n_train} are left for training "
                f"({N_CLUSTERS} clusters, n_heldout={self.n_heldout})"
            )
        return self


SMOKE = InstructionsConfig(
    length=3,
    ks=[0, 1, 3],
    model=GPTConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32),
    train=TrainConfig(steps=20, lr=3e-3, batch_size=16, eval_every=10),
    seeds=[0, 1],
    n_eval=16,
)
QUICK = InstructionsConfig()
PAPER = InstructionsConfig(  # FLAN's ablation: 1..7 clusters; T0: 4 held-out task types
    length=7,
    n_heldout=4,
    ks=[0, 1, 2, 3, 5, 8, 11],
    model=GPTConfig(n_layers=6, d_model=256, n_heads=8, d_mlp=1024, act="gelu"),
    train=TrainConfig(
        steps=20_000,
        lr=1e-3,
        batch_size=256,
        eval_every=500,
        warmup_steps=500,
        schedule="cosine",
        min_lr_ratio=0.1,
    ),
    seeds=[0, 1, 2, 3, 4],
    n_eval=2000,
)

CLAIMS = (
    Claim(
        "more-clusters-better-heldout",
        "Wei et al. 2022 (FLAN) §4.1, fig. 6",
        "held-out-cluster accuracy rises with the number of training clusters: the slope of "
        "exact-match accuracy against log2 k (k >= 1, same examples for every k) is > 0 "
        "(95% CI over seeds)",
        "heldout_slope_log2k",
        ">",
        0.0,
        decide_by="ci",
    ),
    Claim(
        "single-cluster-worse",
        "Wei et al. 2022 (FLAN) §4.1; Sanh et al. 2022 (T0) §6",
        "the same model trained on one cluster with the same number of examples does worse "
        "on the held-out clusters than with all k_max: accuracy(k_max) - accuracy(1) > 0 "
        "(paired by seed, 95% CI)",
        "heldout_gap_kmax_vs_k1",
        ">",
        0.0,
        decide_by="ci",
    ),
    Claim(
        "tuned-beats-base-unseen-order",
        "Sanh et al. 2022 (T0) §6, fig. 4",
        "on compositions in an order never trained (the other order of the training "
        "clusters), the instruction-tuned model (k_max) is more accurate than the base "
        "model (primitives only, same examples): the paired gap is > 0 (95% CI over seeds)",
        "reversed_gap_tuned_vs_base",
        ">",
        0.0,
        decide_by="ci",
    ),
)


@study(
    "instructions",
    config=InstructionsConfig,
    presets={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    claims=CLAIMS,
    title="Instruction tuning: held-out instructions against the number of training clusters",
    citation="Wei et al. 2022 (FLAN, arXiv 2109.01652); Sanh et al. 2022 (T0, arXiv 2110.08207)",
    figures=figures,
    preset_notes={
        "smoke": "3-digit strings, k in {0, 1, 3}, a 1-layer GPT, 20 steps: the code runs",
        "quick": "4-digit strings, 10 training / 5 held-out clusters, k in {0, 1, 3, 10}, "
        "5 seeds, 20 models batched",
        "paper": "7-digit strings, 11 training / 4 held-out clusters, 7 values of k, a "
        "6-layer GPT, 5 seeds",
    },
)
def run(cfg: InstructionsConfig, run: Run) -> dict[str, Any]:
    splits = {s: make_split(cfg.n_heldout, s) for s in cfg.seeds}
    members = members_of(cfg, splits)
    ens = train_members(cfg, members, run)
    correct = accuracies(cfg, ens, members, splits)
    out = summarise(cfg, members, correct)
    out["artifacts"]["splits"] = {
        str(s): {"train": list(sp.train), "heldout": list(sp.heldout)} for s, sp in splits.items()
    }
    run.save_json("instructions", out["artifacts"])
    return out["metrics"]
