"""The target model (trained on everything) and the gold standard (retrained on the
retain set of each forget split), per seed, as one batched ensemble.

Every member is fmlab's GPT with its own init (from its seed) and its own batches (from
its own training rows): member ``(seed, "target")`` sees every trained person and the
world; ``(seed, "retain<pct>")`` the same without that split's forget people. Members
share the architecture and the schedule, so :class:`fmlab.train.ensemble.Ensemble`
trains them as one computation (a loop over them gives the same numbers up to
reassociation, and costs ~K× the Python and kernel-launch overhead).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fmlab.device import place
from fmlab.models import GPT
from fmlab.store import Run
from fmlab.studies.unlearning.facts import Corpus, Fact
from fmlab.studies.unlearning.lm import LM, Batch, WordCodec, encode, gpt_call
from fmlab.train.ensemble import Ensemble, train_ensemble


@dataclass
class Member:
    seed: int
    name: str  # "target" or "retain<pct>"
    rows: Tensor  # indices into the seed's training batch


def training_pairs(facts: Sequence[Fact]) -> list[tuple[str, str]]:
    return [r for f in facts for r in f.train]


def members_of(corpus: Corpus, seed: int, pcts: Sequence[float]) -> tuple[Batch, list[Member]]:
    """The seed's training rows (people's renderings, then the world's) and who sees which."""
    per = [len(f.train) for f in corpus.people]
    starts = torch.tensor([0, *per]).cumsum(0)
    n_people = int(starts[-1])
    n_world = len(training_pairs(corpus.world))
    everyone = torch.arange(n_people + n_world)
    out = [Member(seed, "target", everyone)]
    for pct in pcts:
        gone = torch.zeros(n_people + n_world, dtype=torch.bool)
        for i in corpus.forget[pct]:
            gone[starts[i] : starts[i + 1]] = True
        out.append(Member(seed, f"retain{pct:g}", everyone[~gone]))
    return out


def _batches(
    data: dict[int, Batch], members: list[Member], batch_size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Stacked (K, B, T) token ids and answer masks, each member from its own rows."""
    gens = [torch.Generator().manual_seed(10_000 + 97 * m.seed + k) for k, m in enumerate(members)]
    while True:
        ids, tgt = [], []
        for m, g in zip(members, gens, strict=True):
            pick = m.rows[torch.randint(len(m.rows), (batch_size,), generator=g)]
            b = data[m.seed]
            ids.append(b.ids[pick])
            tgt.append(b.target[pick])
        yield torch.stack(ids), torch.stack(tgt)


def ensemble_loss(call, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Mean NLL of the answer tokens, per member: (K,)."""
    ids, target = batch
    logits = call(ids[..., :-1], stacked=True)  # (K, B, T-1, V)
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[..., 1:, None])[..., 0]
    mask = target[..., 1:].float()
    return -(logp * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)


def train_models(cfg, corpora: dict[int, Corpus], codec: WordCodec, run: Run) -> dict:
    """{(seed, name): LM} for every seed's target and retrained models."""
    pcts = list(cfg.forget_pcts)
    data, members = {}, []
    for seed in cfg.seeds:
        c = corpora[seed]
        data[seed] = encode(codec, training_pairs(c.people) + training_pairs(c.world))
        members += members_of(c, seed, pcts)
    T = max(b.ids.shape[1] for b in data.values())
    data = {s: _pad(b, T, codec.pad) for s, b in data.items()}
    if cfg.seq_len < T:
        raise ValueError(f"a training row has {T} tokens; raise seq_len (now {cfg.seq_len})")
    models = [
        GPT(
            cfg.model,
            vocab_size=len(codec.words),
            seq_len=cfg.seq_len,
            generator=torch.Generator().manual_seed(m.seed * 1000 + k),
        )
        for k, m in enumerate(members)
    ]
    ens = Ensemble([place(m) for m in models])
    cfgs = [cfg.train] * len(members)
    bs = cfg.train.batch_size or 64
    loop = train_ensemble(
        ens, ensemble_loss, _batches(data, members, bs), cfgs, checkpoint=run.checkpoint("models")
    )
    for step, per in run.track(loop, cfg.train.steps, f"{len(members)} models batched"):
        for m, metrics in zip(members, per, strict=True):
            run.log(step, metrics, seed=m.seed, phase="train", model=m.name)
    out = {}
    for k, (m, model) in enumerate(zip(members, models, strict=True)):
        ens.load_into(k, model)
        out[(m.seed, m.name)] = LM(model.eval(), codec, gpt_call, cfg.seq_len)
    return out


def _pad(b: Batch, T: int, pad: int) -> Batch:
    extra = T - b.ids.shape[1]
    if extra <= 0:
        return b
    f = torch.nn.functional.pad
    return Batch(f(b.ids, (0, extra), value=pad), f(b.attn, (0, extra)), f(b.target, (0, extra)))
