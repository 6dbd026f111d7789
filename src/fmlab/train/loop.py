"""The training loop as a generator of ``(step, metrics)``.

Studies drive it with a ``for`` loop and add their own measurements in the loop body
(no callbacks); ``break`` stops training early. ``step`` counts completed optimizer
updates: the first item is ``(0, …)`` before any update, then one item every
``eval_every`` updates and one after the last.

A non-finite loss raises :class:`Diverged`, which the study runner records as a run
with ``status: "diverged"`` — a result, not a crash.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from fmlab.train.config import TrainConfig
from fmlab.train.grokfast import GrokfastEMA
from fmlab.train.schedule import lr_at

LossFn = Callable[[nn.Module, Any], Tensor]


class Diverged(RuntimeError):
    """Training produced a NaN/inf loss after ``step`` completed updates."""

    def __init__(self, step: int, loss: float):
        self.step, self.loss = step, loss
        super().__init__(f"loss became {loss} after {step} updates")


def make_optimizer(params: list[Tensor], cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with decoupled weight decay on every parameter (as in Nanda et al. 2023)."""
    return torch.optim.AdamW(
        params,
        lr=lr_at(cfg, 0),
        betas=cfg.betas,
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        foreach=True,
    )


def train(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterator[Any],
    cfg: TrainConfig,
) -> Iterator[tuple[int, dict[str, float]]]:
    """Train ``model`` on ``batches`` with ``loss_fn(model, batch)``; yield progress.

    Yielded metrics: ``loss`` (mean training loss over the updates since the last
    item), ``lr``, and ``grad_norm`` (before clipping) when clipping is on.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    grokfast = GrokfastEMA(params, cfg.grokfast.alpha, cfg.grokfast.lamb) if cfg.grokfast else None
    lr = lr_at(cfg, 0)
    yield 0, {"lr": lr}
    loss_sum, n_losses, grad_norm = 0.0, 0, None
    for step in range(1, cfg.steps + 1):
        new_lr = lr_at(cfg, step - 1)
        if new_lr != lr:
            lr = new_lr
            for group in optimizer.param_groups:
                group["lr"] = lr
        loss = loss_fn(model, next(batches))
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(step - 1, value)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grokfast is not None:
            grokfast()
        if cfg.grad_clip is not None:
            grad_norm = float(nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True))
        optimizer.step()
        loss_sum, n_losses = loss_sum + value, n_losses + 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics = {"loss": loss_sum / n_losses, "lr": lr}
            if grad_norm is not None:
                metrics["grad_norm"] = grad_norm
            yield step, metrics
            loss_sum, n_losses = 0.0, 0
