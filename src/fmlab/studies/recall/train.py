"""Training one MQAR model for the ``recall`` study: loss and accuracy at query positions."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fmlab.device import place
from fmlab.models import GPT, GPTConfig
from fmlab.models.mixers import model_state_size
from fmlab.store import Run
from fmlab.tasks.mqar import IGNORE, MQARData
from fmlab.train import TrainConfig, iterate_batches, train

# Test examples per forward pass when evaluating. Small batches keep the mixers' (B, T, T)
# and (B, T, d) intermediates in cache: at 64 one evaluation of the SSM / Hyena at width 32-64
# took 0.45-0.5x the time it took at 1,024, which had made evaluation ~13 % of a quick run.
EVAL_BATCH = 64


@dataclass(frozen=True)
class RecallResult:
    """One trained model: where it got and what it cost."""

    mixer: str
    d_model: int
    n_pairs: int
    seed: int
    acc: float  # test accuracy at query positions when training stopped
    steps: int  # updates done (fewer than the budget when it reached stop_acc)
    solved_at: int | None  # first evaluated step with acc >= stop_acc
    params: int  # without embeddings
    state_size: int  # numbers carried per sequence while generating
    cpu_s: float
    lr: float | None = None  # the peak learning rate, when the run sweeps rates

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def query_logits(model: GPT, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Logits (M, V) at the M query positions of a batch, and their labels (M,). Only the
    query positions are unembedded: the others carry no loss."""
    mask = y != IGNORE
    final = model(x, output="final")[mask]  # (M, D)
    W_U = model.W_E.T if model.W_U is None else model.W_U
    return final @ W_U, y[mask]


def loss_fn(model: GPT, batch: tuple[Tensor, Tensor]) -> Tensor:
    logits, labels = query_logits(model, *batch)
    return F.cross_entropy(logits, labels)


@torch.no_grad()
def evaluate(model: GPT, x: Tensor, y: Tensor) -> dict[str, float]:
    correct, total, loss = 0, 0, 0.0
    for i in range(0, len(x), EVAL_BATCH):
        logits, labels = query_logits(model, x[i : i + EVAL_BATCH], y[i : i + EVAL_BATCH])
        correct += int((logits.argmax(-1) == labels).sum())
        total += len(labels)
        loss += F.cross_entropy(logits.double(), labels, reduction="sum").item()
    return {"test_acc": correct / total, "test_loss": loss / total}


def train_model(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    data: MQARData,
    seed: int,
    stop_acc: float | None,
    run: Run,
    lr_tag: bool = False,
) -> RecallResult:
    """Train one model on ``data`` from ``seed``; log its curve; stop at ``stop_acc``.
    ``lr_tag``: one of a learning-rate sweep — its rate tags the curve and the checkpoint."""
    start = time.process_time()
    gen = torch.Generator().manual_seed(seed)
    model = place(GPT(model_cfg, vocab_size=data.vocab_size, seq_len=data.seq_len, generator=gen))
    batches = iterate_batches((data.train_x, data.train_y), train_cfg.batch_size, gen)
    tags = {"mixer": model_cfg.mixer.kind, "d_model": model_cfg.d_model, "n_pairs": data.n_pairs}
    label = f"{model_cfg.mixer.kind} d{model_cfg.d_model} p{data.n_pairs} s{seed}"
    if lr_tag:
        tags["lr"] = train_cfg.lr
        label += f" lr{train_cfg.lr:.3g}"
    solved_at, step, metrics = None, 0, {}
    loop = train(model, loss_fn, batches, train_cfg, checkpoint=run.checkpoint(label))
    for step, metrics in run.track(loop, train_cfg.steps, label):
        metrics |= evaluate(model, data.test_x, data.test_y)
        run.log(step, metrics, seed=seed, **tags)
        if stop_acc is not None and metrics["test_acc"] >= stop_acc:
            solved_at = step
            break
    return RecallResult(
        mixer=model_cfg.mixer.kind,
        d_model=model_cfg.d_model,
        n_pairs=data.n_pairs,
        seed=seed,
        acc=metrics["test_acc"],
        steps=step,
        solved_at=solved_at,
        params=model.n_params(embeddings=False),
        state_size=model_state_size(model, data.seq_len),
        cpu_s=round(time.process_time() - start, 2),
        lr=train_cfg.lr if lr_tag else None,
    )
