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

from fmlab.checkpoint import LoopCheckpoint, raise_stop, stop_requested
from fmlab.device import device_of, place
from fmlab.train.config import TrainConfig
from fmlab.train.grokfast import GrokfastEMA
from fmlab.train.precision import Precision
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
    *,
    checkpoint: LoopCheckpoint | None = None,
) -> Iterator[tuple[int, dict[str, float]]]:
    """Train ``model`` on ``batches`` with ``loss_fn(model, batch)``; yield progress.

    Yielded metrics: ``loss`` (mean training loss over the updates since the last
    item), ``lr``, and ``grad_norm`` (before clipping) when clipping is on. Each batch is
    moved to the model's device; ``cfg.precision`` autocasts the loss computation.
    With a ``checkpoint`` (``run.checkpoint(key)``) the loop saves itself and, on a
    rerun, resumes from its last save (:mod:`fmlab.checkpoint`).
    """
    device = device_of(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    grokfast = GrokfastEMA(params, cfg.grokfast.alpha, cfg.grokfast.lamb) if cfg.grokfast else None
    amp = Precision(cfg, device)
    lr = lr_at(cfg, 0)
    loss_sum, n_losses, grad_norm, drawn, start = 0.0, 0, None, 0, 0
    saved = checkpoint.begin() if checkpoint is not None else None

    def state() -> tuple[dict[str, Any], dict[str, Any]]:
        tensors = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        if grokfast is not None and grokfast.ema is not None:
            tensors["grokfast"] = grokfast.ema
        return tensors, {"lr": lr, "grad_norm": grad_norm, "scaler": amp.state_dict()}

    if saved is not None:
        model.load_state_dict(saved.tensors["model"])
        optimizer.load_state_dict(saved.tensors["optimizer"])
        if grokfast is not None:
            grokfast.ema = saved.tensors.get("grokfast")
        lr, grad_norm = saved.scalars["lr"], saved.scalars["grad_norm"]
        amp.load_state_dict(saved.scalars["scaler"])
        drawn = skip_batches(batches, saved.batches_drawn)
        start, item = saved.item[0], saved.item
    else:
        item = (0, {"lr": lr})
        save_if_due(checkpoint, item, state, drawn, last=cfg.steps == 0)
    yield item
    for step in range(start + 1, cfg.steps + 1):
        new_lr = lr_at(cfg, step - 1)
        if new_lr != lr:
            lr = new_lr
            for group in optimizer.param_groups:
                group["lr"] = lr
        batch = place(next(batches), device)
        drawn += 1
        with amp.autocast():
            loss = loss_fn(model, batch)
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(step - 1, value)
        optimizer.zero_grad(set_to_none=True)
        amp.backward(loss)
        if grokfast is not None:
            grokfast()
        if cfg.grad_clip is not None:
            amp.unscale(optimizer)
            grad_norm = float(nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True))
        amp.step(optimizer)
        loss_sum, n_losses = loss_sum + value, n_losses + 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics = {"loss": loss_sum / n_losses, "lr": lr}
            if grad_norm is not None:
                metrics["grad_norm"] = grad_norm
            loss_sum, n_losses = 0.0, 0
            save_if_due(checkpoint, (step, metrics), state, drawn, last=step == cfg.steps)
            yield step, metrics


def skip_batches(batches: Iterator[Any], n: int) -> int:
    """Draw and discard ``n`` batches (a resumed loop continues the same data stream)."""
    for _ in range(n):
        next(batches)
    return n


def save_if_due(checkpoint, item, state, drawn: int, *, last: bool) -> None:
    """Save before yielding ``item`` when due; then honour a pending stop request."""
    if checkpoint is not None and checkpoint.due(last):
        tensors, scalars = state()
        checkpoint.save(item, tensors, scalars, drawn)
    if (signum := stop_requested()) is not None:
        raise_stop(signum)
