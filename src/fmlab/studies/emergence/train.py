"""Training the size family of the ``emergence`` study and scoring it.

One config axis, ``widths`` (``d_model``; heads and MLP scale with it, depth fixed), gives
the family. The seeds of one width train as one batched ensemble
(:class:`fmlab.train.ensemble.Ensemble`: K same-shaped GPTs, one computation), each
member with its own init and its own stream of rows; widths run one after the other, or
in ``workers`` processes (:func:`fmlab.train.pool.map_logged`). The peak learning rate
falls with width, ``lr · (base_width / d_model) ** lr_width_exponent`` (as in the
``scaling`` study). After training every member is scored on the same fixed evaluation
problems (:mod:`.evaluate`).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fmlab.device import place
from fmlab.models import GPT
from fmlab.store import RunLog
from fmlab.studies.emergence.arithmetic import PAD, Mixture, Task, batches, distractors
from fmlab.studies.emergence.arithmetic import make_problems as problems
from fmlab.studies.emergence.evaluate import EvalSet, score
from fmlab.tasks.language import make_language
from fmlab.train import Diverged
from fmlab.train.ensemble import Ensemble, train_ensemble


def mixture(cfg: Any) -> Mixture:
    tasks = [Task.parse(t) for t in cfg.tasks]
    return Mixture(tasks, make_language(cfg.language), cfg.seq_len, cfg.arith_frac, cfg.reverse)


def eval_sets(cfg: Any) -> dict[str, EvalSet]:
    """The fixed evaluation problems of every task (from ``eval_seed``, not the seeds)."""
    out = {}
    for i, name in enumerate(cfg.tasks):
        gen = torch.Generator().manual_seed(cfg.eval_seed + 7919 * i)
        p = problems(Task.parse(name), cfg.eval_problems, gen, cfg.reverse)
        options, label = distractors(p.answer, cfg.choices, gen)
        out[name] = EvalSet(p, options, label)
    return out


def ensemble_loss(call, batch: Tensor) -> Tensor:
    """Mean next-token cross-entropy over the non-pad targets, per member: (K,)."""
    logits = call(batch[..., :-1], stacked=True)  # (K, B, T, V)
    target = batch[..., 1:]
    nll = F.cross_entropy(
        logits.float().flatten(0, 2), target.flatten(), ignore_index=PAD, reduction="none"
    ).view(target.shape)
    mask = (target != PAD).float()
    return (nll * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)


def build(cfg: Any, width: int, vocab: int) -> list[GPT]:
    return [
        GPT(
            cfg.gpt(width),
            vocab_size=vocab,
            seq_len=cfg.seq_len,
            generator=torch.Generator().manual_seed(100_003 * seed + width),
        )
        for seed in cfg.seeds
    ]


def n_params(cfg: Any, width: int) -> int:
    """Non-embedding parameters of one model of this width (Kaplan et al. 2020's N)."""
    model = build(cfg.model_copy(update={"seeds": [0]}), width, mixture(cfg).vocab_size)[0]
    return model.n_params(embeddings=False)


def train_width(cfg: Any, width: int, run: RunLog) -> dict[str, Any]:
    """Train every seed of one width as one ensemble, then score it on every task."""
    started = time.process_time()
    mix = mixture(cfg)
    models = build(cfg, width, mix.vocab_size)
    N = models[0].n_params(embeddings=False)
    ens = Ensemble([place(m) for m in models])
    tc = cfg.train_at(width)
    loop = train_ensemble(
        ens,
        ensemble_loss,
        batches(mix, tc.batch_size or 64, list(cfg.seeds)),
        [tc] * len(models),
        checkpoint=run.checkpoint(f"width{width}"),
    )
    for step, per in run.track(loop, tc.steps, f"d_model {width}: {len(models)} seeds batched"):
        for seed, m in zip(cfg.seeds, per, strict=True):
            if "diverged_at_step" in m:
                raise Diverged(int(m["diverged_at_step"]), float("nan"))
            run.log(step, m, seed=seed, d_model=width, n_params=N, phase="train")
    sets = eval_sets(cfg)
    with torch.no_grad():
        scores = {name: score(ens, ev) for name, ev in sets.items()}
    return {
        "labels": {name: ev.label.numpy() for name, ev in sets.items()},
        "width": width,
        "n_params": N,
        "n_params_total": models[0].n_params(),
        "scores": scores,
        "cpu_s": time.process_time() - started,
    }
