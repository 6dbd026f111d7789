"""The one unlearning loop every method shares, and the relearning attack.

``unlearn`` copies the model, then at each step draws a forget batch (a fresh seeded
permutation of the forget renderings, cycled) and, for methods with a retain term, a
retain batch of the same size, and takes one AdamW step on the method's loss. It yields
the model at step 0 and every ``eval_every`` steps, so a study measures the whole
trajectory. With ``lr = 0`` the model stays bit-identical (AdamW's update and decay are
both multiplied by the learning rate).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import replace

import torch
from pydantic import Field

from fmlab.config import Config
from fmlab.studies.unlearning.lm import LM, encode
from fmlab.studies.unlearning.methods import METHODS, Step, mean_token_nll
from fmlab.train import Diverged


class UnlearnConfig(Config):
    steps: int = Field(40, ge=0)
    lr: float = Field(2.5e-4, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(32, ge=1, description="forget (and retain) items per step")
    eval_every: int = Field(4, ge=1)
    beta: float = Field(0.1, gt=0, description="NPO's β (Zhang et al. 2024: 0.1)")
    simnpo_beta: float = Field(4.5, gt=0, description="SimNPO's β (open-unlearning: 4.5)")
    alpha: float = Field(1.0, ge=0, description="weight of the retain term")
    grad_clip: float | None = Field(1.0, gt=0)


def _cycle(n: int, size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Batches of ``size`` indices: seeded permutations of range(n), cycled."""
    buf = torch.empty(0, dtype=torch.long)
    while True:
        while len(buf) < size:
            buf = torch.cat([buf, torch.randperm(n, generator=gen)])
        yield buf[:size]
        buf = buf[size:]


def frozen(lm: LM) -> LM:
    model = copy.deepcopy(lm.model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return replace(lm, model=model)


def unlearn(
    lm: LM,
    method: str,
    forget: Sequence[tuple[str, str]],
    retain: Sequence[tuple[str, str]],
    cfg: UnlearnConfig,
    seed: int,
) -> Iterator[tuple[int, LM]]:
    """Unlearn ``forget`` (question, answer) pairs from a copy of ``lm`` with ``method``."""
    spec = METHODS[method]
    work = replace(lm, model=copy.deepcopy(lm.model).train())
    ref = frozen(lm) if spec.ref else None
    beta = cfg.simnpo_beta if method == "simnpo" else cfg.beta
    gen = torch.Generator().manual_seed(seed)
    fb = encode(lm.codec, forget, lm.max_len)
    rb = encode(lm.codec, retain, lm.max_len) if spec.retain else None
    size = min(cfg.batch_size, len(fb))
    f_iter = _cycle(len(fb), size, gen)
    r_iter = _cycle(len(rb), size, gen) if rb is not None else None
    params = [p for p in work.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    yield 0, work
    for step in range(1, cfg.steps + 1):
        s = Step(
            work,
            fb.take(next(f_iter)),
            rb.take(next(r_iter)) if r_iter is not None else None,
            ref,
            beta=beta,
            alpha=cfg.alpha,
        )
        loss = spec.loss(s)
        if not torch.isfinite(loss):
            raise Diverged(step - 1, float(loss))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            yield step, work


def relearn(
    lm: LM, pairs: Sequence[tuple[str, str]], steps: int, lr: float, batch_size: int, seed: int
) -> LM:
    """The relearning attack (Lynch et al. 2024): fine-tune a copy on ``pairs`` (NLL)."""
    work = replace(lm, model=copy.deepcopy(lm.model).train())
    for p in work.model.parameters():
        p.requires_grad_(True)
    batch = encode(lm.codec, pairs, lm.max_len)
    it = _cycle(len(batch), min(batch_size, len(batch)), torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(work.model.parameters(), lr=lr)
    for _ in range(steps):
        loss = mean_token_nll(work, batch.take(next(it)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    work.model.eval()
    return work
