"""Training one attention-only model for the ``induction-heads`` study, with the
measurements of Olsson et al. 2022 taken at every evaluation.

At each evaluation the model is scored on a fixed set of sequences from the training
distribution (loss on the repeated segment, loss elsewhere, in-context learning score)
and on repeated random sequences (prefix-matching score of every head, read from the
``blocks.{i}.attn.pattern`` hook sites through :mod:`fmlab.hooks`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fmlab.config import apply_overrides
from fmlab.device import place
from fmlab.hooks import capture
from fmlab.models import GPT
from fmlab.store import Run
from fmlab.tasks.induction import (
    InductionBatch,
    InductionConfig,
    eval_batch,
    icl_score,
    prefix_matching_score,
    repeated_sequences,
    sample_batch,
)
from fmlab.train import train


@dataclass
class History:
    """Evaluated curves of one model: ``steps`` and one list per metric."""

    steps: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, step: int, metrics: dict[str, float]) -> None:
        self.steps.append(step)
        for name, value in metrics.items():
            self.values.setdefault(name, []).append(float(value))

    def array(self, name: str) -> np.ndarray:
        return np.asarray(self.values[name])


@dataclass(frozen=True)
class Probes:
    """The fixed evaluation data: training-distribution sequences and repeated sequences."""

    batch: InductionBatch
    repeated: Tensor  # (n, 2·half)
    half: int
    early_end: int
    late_start: int


def make_probes(cfg: Any) -> Probes:
    task: InductionConfig = cfg.task
    half = task.seq_len // 2
    gen = torch.Generator().manual_seed(cfg.eval_seed + 1)
    early = cfg.icl_early_end or max(2, task.seq_len // 8)
    late = cfg.icl_late_start or (3 * task.seq_len) // 4
    return Probes(
        batch=eval_batch(task, cfg.n_eval, cfg.eval_seed),
        repeated=repeated_sequences(cfg.n_probe, half, task.vocab_size, gen),
        half=half,
        early_end=early,
        late_start=late,
    )


def token_batches(task: InductionConfig, batch_size: int, gen: torch.Generator) -> Iterator:
    while True:
        yield sample_batch(task, batch_size, gen).tokens


def loss_fn(model: GPT, tokens: Tensor) -> Tensor:
    logits = model(tokens[:, :-1])  # (B, T-1, V): next-token prediction everywhere
    return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())


@torch.no_grad()
def position_losses(model: GPT, tokens: Tensor) -> Tensor:
    """Cross-entropy ``(B, T-1)`` of predicting token ``p + 1`` at position ``p``."""
    logits = model(tokens[:, :-1]).double()
    return F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")


def prefix_scores(model: GPT, repeated: Tensor, half: int) -> np.ndarray:
    """Prefix-matching score of every head, ``(n_layers, n_heads)``."""
    sites = [f"blocks.{i}.attn.pattern" for i in range(len(model.blocks))]
    patterns = capture(model, repeated, sites)
    return np.stack([prefix_matching_score(patterns[s], half).cpu().numpy() for s in sites])


def evaluate(model: GPT, probes: Probes) -> dict[str, float]:
    losses = position_losses(model, probes.batch.tokens)  # (B, T-1)
    mask = probes.batch.repeat_mask
    scores = prefix_scores(model, probes.repeated, probes.half)
    out = {
        "loss_repeated": losses[mask].mean().item(),
        "loss_other": losses[~mask].mean().item(),
        "icl_score": icl_score(  # position 0 has no context at all: the band starts at 1
            losses.mean(0), early_start=1, early_end=probes.early_end, late_start=probes.late_start
        ).item(),
        "prefix_max": float(scores.max()),
    }
    for (layer, head), value in np.ndenumerate(scores):
        out[f"prefix_l{layer}h{head}"] = float(value)
    return out


@dataclass(frozen=True)
class Trained:
    """One trained model: its curves, final head scores and an example attention map."""

    n_layers: int
    seed: int
    history: History
    prefix_final: np.ndarray  # (n_layers, n_heads)
    cpu_s: float
    wall_s: float


def train_model(cfg: Any, n_layers: int, seed: int, probes: Probes, run: Run) -> Trained:
    """Train an attention-only model of ``n_layers`` from ``seed``; log every evaluation."""
    task = cfg.task
    model_cfg = apply_overrides(cfg.model, {"n_layers": n_layers})
    gen = torch.Generator().manual_seed(seed)
    model = place(GPT(model_cfg, vocab_size=task.vocab_size, seq_len=task.seq_len, generator=gen))
    batches = token_batches(task, cfg.train.batch_size or 64, gen)
    history = History()
    start, cpu = time.perf_counter(), time.process_time()
    checkpoint = run.checkpoint(
        f"{n_layers}L s{seed}",
        state=lambda: dataclasses.asdict(history),
        restore=lambda saved: vars(history).update(saved),
    )
    loop = train(model, loss_fn, batches, cfg.train, checkpoint=checkpoint)
    for step, metrics in run.track(loop, cfg.train.steps, f"{n_layers}L s{seed}"):
        metrics |= evaluate(model, probes)
        run.log(step, metrics, seed=seed, n_layers=n_layers)
        history.add(step, metrics)
    run.save_weights(f"model_{n_layers}L_seed{seed}", model)
    scores = prefix_scores(model, probes.repeated, probes.half)
    save_example(model, probes, scores, run, f"attention_{n_layers}L_seed{seed}")
    return Trained(
        n_layers, seed, history, scores, time.process_time() - cpu, time.perf_counter() - start
    )


def save_example(model: GPT, probes: Probes, scores: np.ndarray, run: Run, name: str) -> None:
    """The attention pattern of the best prefix-matching head on the first evaluation
    sequence (which holds one repeated segment), for the heatmap figure."""
    layer, head = np.unravel_index(int(scores.argmax()), scores.shape)
    b = probes.batch
    tokens = b.tokens[:1]
    pattern = capture(model, tokens[:, :-1], [f"blocks.{layer}.attn.pattern"])
    run.save_json(
        name,
        {
            "layer": int(layer),
            "head": int(head),
            "prefix_score": float(scores[layer, head]),
            "pattern": pattern[f"blocks.{layer}.attn.pattern"][0, head].tolist(),
            "tokens": tokens[0].tolist(),
            "src": int(b.src[0]),
            "dst": int(b.dst[0]),
            "length": int(b.length[0]),
        },
    )
