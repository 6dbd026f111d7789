"""What does fine-tuning change in a representation? Mostly the top layers.

Merchant et al. 2020 ("What Happens To BERT Embeddings During Fine-tuning?",
BlackboxNLP) compared BERT before and after fine-tuning layer by layer and found the
change concentrated in the top layers, the lower ones staying close to the pre-trained
model; Neyshabur et al. 2020 ("What is being transferred in transfer learning?",
NeurIPS) likewise find lower layers hold the general features that transfer. This study
reproduces the effect under control: a small GPT is pre-trained on a synthetic language,
fine-tuned on a shifted one, and each layer's representation of the same held-out inputs
is compared before and after with linear CKA (Kornblith et al. 2019).

Claim in one sentence: after full fine-tuning, CKA between the pre-trained and the
fine-tuned representation is higher at the first block than at the last one (the
difference's 95 % CI over seeds lies above 0).

Why these tasks make the effect real rather than forced. Both languages share a
lexicon: V tokens fall into K word classes, and a token is drawn uniformly within its
class. A sequence's *classes* follow an order-2 Markov chain; the two languages differ
only in that chain's transition table (drawn independently). Predicting the next token
needs (i) the class of the current and (ii) of the previous token — features the two
tasks share, computed by embeddings and early attention — and (iii) a map from that
class pair to the next-class distribution, which the shift rewrites entirely. Nothing
is frozen in full fine-tuning and the data does not say where (iii) must live; the
study measures where training puts the change. Two references frame it: fine-tuning
only the last block (lower layers unchanged by construction: CKA = 1), and continued
training on the *original* language for the same steps (how much a layer drifts
without any shift). The effective rank of each block's weight update ΔW is reported
too — the low-rank premise of LoRA (Hu et al. 2022).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from fmlab.claims import Claim
from fmlab.config import Config
from fmlab.device import place
from fmlab.models import GPT, GPTConfig
from fmlab.stats import over_seed_rows
from fmlab.store import Run
from fmlab.studies.representations.figures import figures
from fmlab.studies.representations.task import ClassMarkov, ShiftConfig, make_pair
from fmlab.study import study
from fmlab.train import TrainConfig, train

Variant = Literal["full", "last_layer", "control"]
VARIANTS: tuple[Variant, ...] = ("full", "last_layer", "control")


class RepresentationsConfig(Config):
    language: ShiftConfig = ShiftConfig()
    model: GPTConfig = GPTConfig(n_layers=4, d_model=64, n_heads=4, d_mlp=256, act="gelu")
    pretrain: TrainConfig = TrainConfig(
        steps=1000, lr=3e-3, weight_decay=0.01, batch_size=32, warmup_steps=100, eval_every=100
    )
    finetune: TrainConfig = TrainConfig(
        steps=300, lr=1e-3, weight_decay=0.01, batch_size=32, eval_every=50
    )
    variants: list[Variant] = Field(list(VARIANTS), min_length=1)
    seeds: list[int] = Field([0, 1, 2], min_length=1, description="model, data and task seeds")
    n_eval: int = Field(256, ge=8, description="held-out sequences for losses and CKA")


SMOKE = RepresentationsConfig(
    language=ShiftConfig(n_classes=4, tokens_per_class=4, seq_len=12),
    model=GPTConfig(n_layers=2, d_model=16, n_heads=2, d_mlp=32, act="gelu"),
    pretrain=TrainConfig(steps=20, lr=3e-3, batch_size=8, eval_every=10),
    finetune=TrainConfig(steps=10, lr=1e-3, batch_size=8, eval_every=5),
    seeds=[0, 1],
    n_eval=16,
)
QUICK = RepresentationsConfig()
PAPER = RepresentationsConfig(  # wider, deeper, longer, more seeds: for a GPU or a cluster
    language=ShiftConfig(n_classes=16, tokens_per_class=16, seq_len=64),
    model=GPTConfig(n_layers=8, d_model=256, n_heads=8, d_mlp=1024, act="gelu"),
    pretrain=TrainConfig(
        steps=20000, lr=1e-3, weight_decay=0.01, batch_size=64, warmup_steps=500,
        schedule="cosine", min_lr_ratio=0.1, eval_every=500,
    ),
    finetune=TrainConfig(steps=3000, lr=3e-4, weight_decay=0.01, batch_size=64, eval_every=250),
    seeds=[0, 1, 2, 3, 4],
    n_eval=1024,
)  # fmt: skip

CLAIMS = (
    Claim(
        "top-layers-change-most",
        "Merchant et al. 2020; Neyshabur et al. 2020",
        "full fine-tuning changes the last block's representation more than the first "
        "block's: CKA(pre-trained, fine-tuned) at block 0 minus at the last block > 0",
        "cka_drop_full",
        ">",
        0.0,
        decide_by="ci",
    ),
)


def loss_fn(model: GPT, batch: torch.Tensor) -> torch.Tensor:
    logits = model(batch[:, :-1])  # (B, T-1, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


@torch.no_grad()
def eval_loss(model: GPT, tokens: torch.Tensor) -> float:
    return loss_fn(model, tokens).double().item()


def batches(lang: ClassMarkov, size: int, gen: torch.Generator):
    while True:  # fresh sequences every step: an infinite stream, no overfitting
        yield lang.sample(size, gen)


def fit(model, lang, cfg: TrainConfig, gen, run, seed, phase, eval_tokens) -> None:
    """Train; log the training loss and the held-out loss on ``lang``."""
    label = f"{phase} s{seed}"
    data = batches(lang, cfg.batch_size or 32, gen)
    steps = train(model, loss_fn, data, cfg, checkpoint=run.checkpoint(label))
    for step, metrics in run.track(steps, cfg.steps, label):
        metrics["eval_loss"] = eval_loss(model, eval_tokens)
        run.log(step, metrics, seed=seed, phase=phase)


def freeze_all_but_last_block(model: GPT) -> None:
    last = model.blocks[-1]
    keep = {id(p) for p in [*last.parameters(), *model.ln_final.parameters()]}
    if model.W_U is not None:
        keep.add(id(model.W_U))
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def seed_run(cfg: RepresentationsConfig, seed: int, run: Run) -> dict[str, float]:
    from fmlab.studies.representations.measure import compare_models

    src, dst = make_pair(cfg.language, seed)
    gen = torch.Generator().manual_seed(seed)
    T = cfg.language.seq_len
    model = place(GPT(cfg.model, vocab_size=src.vocab_size, seq_len=T, generator=gen))
    eval_gen = torch.Generator().manual_seed(10_000 + seed)
    eval_src, eval_dst = place((src.sample(cfg.n_eval, eval_gen), dst.sample(cfg.n_eval, eval_gen)))
    fit(model, src, cfg.pretrain, gen, run, seed, "pretrain", eval_src)
    pre_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = {
        "pretrain_excess_loss": eval_loss(model, eval_src) - src.optimal_loss(),
        "shifted_loss_before": eval_loss(model, eval_dst),
        "shifted_optimal_loss": dst.optimal_loss(),
    }
    for variant in cfg.variants:
        tuned = place(GPT(cfg.model, vocab_size=src.vocab_size, seq_len=T, generator=gen))
        tuned.load_state_dict(pre_state)
        if variant == "last_layer":
            freeze_all_but_last_block(tuned)
        lang = src if variant == "control" else dst
        ft_gen = torch.Generator().manual_seed(20_000 + seed)  # same batches for every variant
        fit(tuned, lang, cfg.finetune, ft_gen, run, seed, variant, eval_dst)
        out[f"excess_loss_{variant}"] = eval_loss(tuned, eval_dst) - dst.optimal_loss()
        out |= compare_models(model, tuned, eval_dst, variant, run, seed)
    if "cka_drop_full" in out and "cka_drop_control" in out:  # the part due to the shift
        out["cka_drop_shift_minus_control"] = out["cka_drop_full"] - out["cka_drop_control"]
    return out


@study(
    "representations",
    config=RepresentationsConfig,
    presets={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    claims=CLAIMS,
    title="Fine-tuning changes the top layers: layer-wise CKA before vs after",
    citation="Merchant et al. 2020 (arXiv 2004.14448); Neyshabur et al. 2020 (arXiv "
    "2008.11687); Kornblith et al. 2019 (CKA, arXiv 1905.00414); Hu et al. 2022 (LoRA)",
    figures=figures,
    preset_notes={
        "smoke": "exercises the code in seconds",
        "quick": "4-layer GPT, 3 seeds: a few minutes on 2 CPU cores",
        "paper": "8 layers, width 256, 5 seeds",
    },
)
def run(cfg: RepresentationsConfig, run: Run) -> dict[str, object]:
    per_seed = [seed_run(cfg, s, run) for s in cfg.seeds]
    return over_seed_rows(per_seed) | {"n_seeds": len(cfg.seeds), "n_layers": cfg.model.n_layers}
