"""Training the grid of the ``scaling`` study: one process per width, one thread each.

Each width trains a constant-lr *trunk*; every (N, D) run of that width branches off the
trunk at ``(1 - cooldown_frac) · D`` and decays the lr linearly to 0 by ``D`` (the
warmup-stable-decay schedule of Hägele et al. 2024). A branch copies the trunk's model,
optimizer state and data-generator state, so it is exactly the run one would get by training
from scratch with that schedule; its final held-out loss is the (N, D) point that is fitted.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from fmlab.checkpoint import raise_stop, stop_requested
from fmlab.device import device_of, place
from fmlab.models import GPT
from fmlab.store import Run
from fmlab.tasks.language import MarkovLanguage, make_language
from fmlab.train import Diverged, TrainConfig, make_optimizer
from fmlab.train.pool import job_checkpoint, pool_map


@dataclass(frozen=True)
class EvalSet:
    """A fixed, seeded held-out set scored against the true next-token distributions."""

    inputs: torch.Tensor  # (n, T) tokens
    targets: torch.Tensor  # (n, T - k + 1) next tokens at positions with a full context
    probs: torch.Tensor  # (n, T - k + 1, V) true next-token distributions there
    bayes_loss: float  # mean entropy of ``probs``: this set's own optimal loss

    @classmethod
    def build(cls, lang: MarkovLanguage, cfg: Any) -> EvalSet:
        gen = torch.Generator().manual_seed(cfg.eval_seed)
        tokens = lang.sample(cfg.eval_sequences, cfg.seq_len + 1, gen)
        k = lang.order
        probs = lang.next_token_probs(tokens[:, :-1])[:, k - 1 :]
        logp = torch.log(torch.where(probs > 0, probs, 1.0))
        bayes = float(-(probs * logp).sum(-1).mean())
        return cls(tokens[:, :-1], tokens[:, k:], probs, bayes)

    @torch.no_grad()
    def score(self, model: GPT) -> dict[str, float]:
        k = self.inputs.shape[1] - self.targets.shape[1] + 1
        logp = model(self.inputs)[:, k - 1 :].double().log_softmax(-1)  # (n, T-k+1, V)
        expected = float(-(self.probs * logp).sum(-1).mean())
        sampled = float(-logp.gather(-1, self.targets[..., None]).mean())
        return {
            "eval_loss": expected,
            "eval_loss_sampled": sampled,
            "excess_loss": expected - self.bayes_loss,
        }


def run_plan(cfg: Any, n_params: int) -> dict[int, float]:
    """Steps of each run of a model with ``n_params`` → its nominal budget C (``D = C/6N``)."""
    tokens_per_step = cfg.batch_size * cfg.seq_len
    plan: dict[int, float] = {}
    for c in sorted(cfg.budgets):
        steps = round(c / (6 * n_params) / tokens_per_step)
        if steps >= cfg.min_steps and (cfg.max_steps is None or steps <= cfg.max_steps):
            plan.setdefault(steps, c)
    return plan


def planned_runs(cfg: Any) -> dict[int, dict[int, float]]:
    """Width → {steps: budget} of the runs the grid will train (models built, not trained)."""
    out = {}
    for width in cfg.widths:
        gen = torch.Generator().manual_seed(0)
        model = GPT(
            cfg.gpt(width), vocab_size=cfg.language.vocab_size, seq_len=cfg.seq_len, generator=gen
        )
        out[width] = run_plan(cfg, model.n_params(embeddings=cfg.count_embeddings))
    return out


def _update(model, opt, batch, lr, clip, step) -> float:
    batch = place(batch, device_of(model))
    for group in opt.param_groups:
        group["lr"] = lr
    logits = model(batch[:, :-1])  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    value = loss.item()
    if not math.isfinite(value):
        raise Diverged(step, value)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True)
    opt.step()
    return value


def _cooldown(model, opt, data, lang, cfg, width, start, total, ev) -> dict[str, float]:
    """Finish a run of ``total`` steps from the trunk at ``start``: lr decays linearly to 0."""
    model, opt = copy.deepcopy((model, opt))  # deepcopy keeps opt bound to the copied params
    gen = torch.Generator().manual_seed(0)
    gen.set_state(data.get_state())  # the same data an independent run would see next
    lr0, n = _trunk_lr(cfg.schedule, width, start), total - start
    for t in range(n):
        batch = lang.sample(cfg.batch_size, cfg.seq_len + 1, gen)
        _update(model, opt, batch, lr0 * (1 - t / n), cfg.schedule.grad_clip, start + t)
    return ev.score(model)


def peak_lr(s: Any, width: int) -> float:
    return s.lr * (s.base_width / width) ** s.width_exponent


def _trunk_lr(s: Any, width: int, step: int) -> float:
    w = s.warmup_steps
    return peak_lr(s, width) * (min(1.0, (step + 1) / w) if w else 1.0)


@contextmanager
def one_thread() -> Iterator[None]:
    """Train on one thread (in a worker or in-process), so results do not depend on the pool."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_width(cfg: Any, width: int, seed: int = 0) -> dict[str, Any]:
    """Every run of one width and seed (``cfg`` a ``ScalingConfig``): its final (N, D)
    records and the trunk's learning curve; a divergence is returned, not raised."""
    lang = make_language(cfg.language)
    ev = place(EvalSet.build(lang, cfg))
    gen = torch.Generator().manual_seed(seed * 100_003 + width)
    model = GPT(cfg.gpt(width), vocab_size=lang.vocab_size, seq_len=cfg.seq_len, generator=gen)
    place(model)
    n_params = model.n_params(embeddings=cfg.count_embeddings)
    plan = run_plan(cfg, n_params)
    branches: dict[int, list[int]] = {}
    for total in plan:
        start = total - max(1, round(cfg.schedule.cooldown_frac * total))
        branches.setdefault(start, []).append(total)
    s = cfg.schedule
    opt = make_optimizer(
        list(model.parameters()), TrainConfig(lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)
    )
    data = torch.Generator().manual_seed(seed * 100_003 + width + 1)
    finals, curve, end = [], [], max(branches, default=0)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    diverged, started = None, time.process_time()
    ckpt = job_checkpoint(
        f"width {width} seed {seed}",
        state=lambda: {"finals": finals, "curve": curve},
        restore=lambda saved: (finals.extend(saved["finals"]), curve.extend(saved["curve"])),
    )
    first = _resume(ckpt, model, opt, data)
    with one_thread():
        try:
            for step in range(first, end + 1):
                if ckpt is not None and ckpt.due(last=step == end):
                    state = {"model": model.state_dict(), "opt": opt.state_dict()}
                    ckpt.save((step, None), state | {"data": data.get_state()}, {}, 0)
                if (signum := stop_requested()) is not None:
                    raise_stop(signum)
                for total in branches.get(step, []):
                    scores = _cooldown(model, opt, data, lang, cfg, width, step, total, ev)
                    tokens = total * tokens_per_step
                    finals.append({"steps": total, "tokens": tokens, "budget": plan[total]})
                    finals[-1].update(scores)
                if step % cfg.curve_every == 0 or step == end:
                    scores = ev.score(model)
                    curve.append({"steps": step, "tokens": step * tokens_per_step, **scores})
                if step < end:
                    batch = lang.sample(cfg.batch_size, cfg.seq_len + 1, data)
                    _update(model, opt, batch, _trunk_lr(s, width, step), s.grad_clip, step)
        except Diverged as d:  # returned, not raised: it must cross a process boundary
            diverged = d.step
    return {
        "width": width,
        "seed": seed,
        "n_params": n_params,
        "n_params_total": model.n_params(),
        "finals": finals,
        "curve": curve,
        "bayes_loss": ev.bayes_loss,
        "diverged_at": diverged,
        "cpu_s": time.process_time() - started,
    }


def train_all(cfg: Any, run: Run) -> list[dict[str, Any]]:
    """Train every (width, seed) in ``cfg.workers`` processes; results in (width, seed) order.

    Jobs start longest first (by planned steps × a per-step cost that grows with N), which
    keeps the workers evenly loaded to the end."""
    plans = planned_runs(cfg)
    jobs = [(cfg, w, s) for w in cfg.widths for s in cfg.seeds if plans[w]]
    return pool_map(
        train_width,
        jobs,
        cfg.workers,
        run,
        "runs",
        cost=lambda job: _planned_cost(cfg, plans[job[1]], job[1]),
    )


def _resume(ckpt, model: GPT, opt, data: torch.Generator) -> int:
    """Restore a width's trunk from its checkpoint; the step to continue from (0: none)."""
    saved = ckpt.begin() if ckpt is not None else None
    if saved is None:
        return 0
    model.load_state_dict(saved.tensors["model"])
    opt.load_state_dict(saved.tensors["opt"])
    data.set_state(saved.tensors["data"])
    return int(saved.item[0])


def _planned_cost(cfg: Any, plan: dict[int, float], width: int) -> float:
    steps = (1 - cfg.schedule.cooldown_frac) * max(plan) + cfg.schedule.cooldown_frac * sum(plan)
    return steps * (1 + width**2 / 400)  # per-step time: overhead + a part ∝ N ∝ width²
