"""Every model of the study, per seed and number of training clusters k, as one batched
ensemble (:class:`fmlab.train.ensemble.Ensemble`).

Member ``(seed, k)`` is fmlab's GPT trained for the same steps on batches of the same
size — the same number of examples for every k, FLAN's control — with a ``single_frac``
share of single primitives and the rest compositions drawn uniformly from the first k
training clusters of its seed's split. ``k = 0`` is the **base model**: the same steps,
single primitives only (it knows every part, and never saw ``then``). All members of a
seed start from the same initial weights, so comparisons across k are paired.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from fmlab.device import place
from fmlab.models import GPT
from fmlab.store import Run
from fmlab.studies.instructions.task import VOCAB, Split, mixture, seq_len
from fmlab.train.ensemble import Ensemble, train_ensemble


@dataclass(frozen=True)
class Member:
    seed: int
    k: int
    pairs: Tensor  # (k, 2) ordered family pairs it is trained on


def members_of(cfg, splits: dict[int, Split]) -> list[Member]:
    out = []
    for seed in cfg.seeds:
        for k in cfg.ks:
            pairs = torch.tensor(splits[seed].trained(k), dtype=torch.long).view(-1, 2)
            out.append(Member(seed, k, pairs))
    return out


def batches(cfg, members: list[Member]) -> Iterator[tuple[Tensor, Tensor]]:
    """Stacked (K, B, T) ids and answer masks; member k draws from its own generator."""
    gens = [torch.Generator().manual_seed(100_003 * m.seed + 31 * m.k + 1) for m in members]
    B = cfg.train.batch_size or 64
    while True:
        rows = [
            mixture(m.pairs, B, cfg.length, cfg.single_frac, g)
            for m, g in zip(members, gens, strict=True)
        ]
        yield torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


def ensemble_loss(call, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Mean NLL of the answer tokens (after ``=``), per member: (K,)."""
    ids, target = batch
    logits = call(ids[..., :-1], stacked=True)  # (K, B, T-1, V)
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[..., 1:, None])[..., 0]
    mask = target[..., 1:].float()
    return -(logp * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)


def build(cfg, members: list[Member]) -> tuple[Ensemble, list[GPT]]:
    models = [
        GPT(
            cfg.model,
            vocab_size=len(VOCAB),
            seq_len=seq_len(cfg.length),
            generator=torch.Generator().manual_seed(1000 + m.seed),  # shared across k
        )
        for m in members
    ]
    return Ensemble([place(m) for m in models]), models


def train_members(cfg, members: list[Member], run: Run) -> Ensemble:
    ens, _ = build(cfg, members)
    loop = train_ensemble(
        ens,
        ensemble_loss,
        batches(cfg, members),
        [cfg.train] * len(members),
        checkpoint=run.checkpoint("models"),
    )
    for step, per in run.track(loop, cfg.train.steps, f"{len(members)} models batched"):
        for m, metrics in zip(members, per, strict=True):
            run.log(step, metrics, seed=m.seed, k=m.k, phase="train")
    return ens
