"""Training one feed-forward variant for the ``moe`` study on a Markov language."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fmlab.device import place
from fmlab.models import GPT, GPTConfig
from fmlab.models.moe import moe_aux_loss, moe_layers
from fmlab.store import Run
from fmlab.tasks.language import MarkovLanguage
from fmlab.train import TrainConfig, train


@dataclass(frozen=True)
class VariantResult:
    variant: str
    seed: int
    loss: float  # held-out next-token cross-entropy, nats
    excess_loss: float  # loss minus the exact optimum of the language at these positions
    entropy_rate: float
    params: int  # without embeddings
    active_params: int  # used per token (without embeddings)
    load_cv: float | None  # router balance on the held-out tokens, mean over MoE layers
    max_load_ratio: float | None
    load_entropy: float | None
    dropped_fraction: float | None
    loads: list[list[float]]  # per MoE layer: fraction of tokens routed to each expert
    cpu_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stream(language: MarkovLanguage, batch: int, seq_len: int, gen: torch.Generator) -> Iterator:
    while True:
        yield language.sample(batch, seq_len + 1, gen)  # (B, T + 1): inputs and targets


def lm_loss(model: GPT, tokens: Tensor) -> Tensor:
    """Next-token cross-entropy (mean over positions) — the loss that is reported."""
    logits = model(tokens[:, :-1])  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())


def loss_fn(model: GPT, tokens: Tensor) -> Tensor:
    """Training loss: the LM loss plus the MoE layers' auxiliary losses (0 when dense)."""
    return lm_loss(model, tokens) + moe_aux_loss(model)


def active_params(model: GPT) -> int:
    """Non-embedding parameters one token uses: MoE layers count router + k experts."""
    total = model.n_params(embeddings=False)
    for layer in moe_layers(model):
        total += layer.n_active_params() - sum(p.numel() for p in layer.parameters())
    return total


@torch.no_grad()
def evaluate(model: GPT, tokens: Tensor, optimum: float) -> dict[str, float]:
    loss = lm_loss(model, tokens).item()  # one forward: the router stats below are for it
    out = {"eval_loss": loss, "excess_loss": loss - optimum}
    stats = [m.stats for m in moe_layers(model) if m.stats is not None]
    if stats:
        for key in ("load_cv", "max_load_ratio", "load_entropy", "dropped_fraction"):
            out[key] = sum(getattr(s, key) for s in stats) / len(stats)
    return out


def train_variant(
    model_cfg: GPTConfig,
    variant: str,
    train_cfg: TrainConfig,
    language: MarkovLanguage,
    eval_tokens: Tensor,
    seq_len: int,
    seed: int,
    run: Run,
) -> VariantResult:
    start = time.process_time()
    gen = torch.Generator().manual_seed(seed)
    model = place(GPT(model_cfg, vocab_size=language.vocab_size, seq_len=seq_len, generator=gen))
    optimum = float(language.optimal_loss(seq_len + 1)[1:].mean())
    batches = stream(language, train_cfg.batch_size or 32, seq_len, gen)
    metrics: dict[str, float] = {}
    label = f"{variant} s{seed}"
    steps = train(model, loss_fn, batches, train_cfg, checkpoint=run.checkpoint(label))
    for step, metrics in run.track(steps, train_cfg.steps, label):
        metrics |= evaluate(model, eval_tokens, optimum)
        run.log(step, metrics, seed=seed, variant=variant)
    return VariantResult(
        variant=variant,
        seed=seed,
        loss=metrics["eval_loss"],
        excess_loss=metrics["excess_loss"],
        entropy_rate=language.entropy_rate,
        params=model.n_params(embeddings=False),
        active_params=active_params(model),
        load_cv=metrics.get("load_cv"),
        max_load_ratio=metrics.get("max_load_ratio"),
        load_entropy=metrics.get("load_entropy"),
        dropped_fraction=metrics.get("dropped_fraction"),
        loads=[list(m.stats.load) for m in moe_layers(model) if m.stats is not None],
        cpu_s=round(time.process_time() - start, 2),
    )
