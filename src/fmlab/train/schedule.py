"""Learning-rate schedules as plain functions of the step."""

from __future__ import annotations

import math

from fmlab.train.config import TrainConfig


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate for the update that follows ``step`` completed updates.

    Linear warm-up over ``warmup_steps`` (starting at lr/warmup, not 0, so the first
    update moves), then constant, cosine or linear decay to ``min_lr_ratio × lr``.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(cfg.steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "cosine":
        return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return floor + (cfg.lr - floor) * (1 - progress)
