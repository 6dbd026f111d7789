"""Training one operation in one format at every dataset size and seed as one batched
ensemble, and scoring the models by greedy decoding.

Member ``(seed, N)`` is fmlab's GPT with its own init, trained on the first ``N``
problems of its seed's order (:func:`.formats.make_split`), drawing its own batches with
replacement. Every member of every format takes the same number of steps at the same
batch size: equal samples seen (and optimizer steps) whatever the dataset size; a
scratchpad sample is longer, so it costs more tokens (the summary states how many).
Members share the architecture and schedule, so :class:`fmlab.train.ensemble.Ensemble`
trains them together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fmlab.device import place
from fmlab.models import GPT
from fmlab.store import Run
from fmlab.studies.scratchpad.formats import (
    EOS,
    VOCAB,
    Problem,
    answer_of,
    decode,
    encode,
    output,
)
from fmlab.train.ensemble import Ensemble, train_ensemble


@dataclass(frozen=True)
class Member:
    seed: int
    size: int


def encode_rows(problems: Sequence[Problem], fmt: str, T: int) -> tuple[Tensor, Tensor]:
    """Token ids (N, T) padded with ``#`` and the loss mask (N, T): 1 where the token
    is part of the output (it is predicted from the tokens before it)."""
    ids = torch.full((len(problems), T), EOS, dtype=torch.long)
    mask = torch.zeros((len(problems), T), dtype=torch.bool)
    for i, p in enumerate(problems):
        prompt, out = encode(p.prompt), encode(output(p, fmt))
        row = prompt + out
        if len(row) > T:
            raise ValueError(f"{p.prompt}{output(p, fmt)} has {len(row)} tokens > {T}")
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, len(prompt) : len(row)] = True
    return ids, mask


def row_length(p: Problem, fmt: str) -> int:
    return len(p.prompt) + len(output(p, fmt))


def _batches(
    ids: dict[int, Tensor], mask: dict[int, Tensor], members: list[Member], batch_size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Stacked (K, B, T) ids and masks: member k samples its own first ``size`` rows."""
    gens = [torch.Generator().manual_seed(50_021 * m.seed + m.size) for m in members]
    while True:
        xs, ms = [], []
        for m, g in zip(members, gens, strict=True):
            pick = torch.randint(m.size, (batch_size,), generator=g)
            xs.append(ids[m.seed][pick])
            ms.append(mask[m.seed][pick])
        yield torch.stack(xs), torch.stack(ms)


def ensemble_loss(call, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Mean NLL of the output tokens, per member: (K,)."""
    ids, mask = batch
    logits = call(ids[..., :-1], stacked=True)  # (K, B, T-1, V)
    nll = F.cross_entropy(
        logits.flatten(0, 2).float(), ids[..., 1:].flatten(), reduction="none"
    ).view(ids[..., 1:].shape)
    m = mask[..., 1:].float()
    return (nll * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1)


def train_format(
    cfg, op: str, fmt: str, splits: dict[int, list[Problem]], seq_len: int, run: Run
) -> tuple[Ensemble, list[Member]]:
    """Train every (seed, size) member of one operation and format; their curves are
    logged with tags ``op``, ``format``, ``seed``, ``size``."""
    T = max(row_length(p, fmt) for s in cfg.seeds for p in splits[s][: max(cfg.sizes)])
    ids, mask = {}, {}
    for seed in cfg.seeds:
        ids[seed], mask[seed] = encode_rows(splits[seed][: max(cfg.sizes)], fmt, T)
    members = [Member(seed, n) for seed in cfg.seeds for n in cfg.sizes]
    models = [
        GPT(
            cfg.model,
            vocab_size=len(VOCAB),
            seq_len=seq_len,
            generator=torch.Generator().manual_seed(1000 * m.seed + k),
        )
        for k, m in enumerate(members)
    ]
    ens = Ensemble([place(m) for m in models])
    loop = train_ensemble(
        ens,
        ensemble_loss,
        _batches(ids, mask, members, cfg.train.batch_size or 64),
        [cfg.train] * len(members),
        checkpoint=run.checkpoint(f"{op}-{fmt}"),
    )
    label = f"{op} {fmt}: {len(members)} models batched"
    for step, per in run.track(loop, cfg.train.steps, label):
        for m, metrics in zip(members, per, strict=True):
            run.log(step, metrics, op=op, format=fmt, seed=m.seed, size=m.size)
    return ens, members


@torch.no_grad()
def generate(ens: Ensemble, prompts: Tensor, n_new: int, chunk: int = 256) -> Tensor:
    """Greedy continuation of equal-length ``prompts`` (N, t) by every member:
    (K, N, n_new) token ids."""
    outs = []
    for start in range(0, len(prompts), chunk):
        x = prompts[start : start + chunk].expand(ens.size, -1, -1)
        new = []
        for _ in range(n_new):
            nxt = ens(x, stacked=True)[:, :, -1].argmax(-1)  # (K, n)
            new.append(nxt)
            x = torch.cat([x, nxt[..., None]], -1)
        outs.append(torch.stack(new, -1))
    return torch.cat(outs, 1)


def score(
    ens: Ensemble, problems: Sequence[Problem], fmt: str, *, skip_scratch: bool = False
) -> dict[str, Tensor]:
    """Each member's greedy answers to ``problems``: per problem (K, N) whether the
    stated result is exact (``exact``), whether the whole output is (``output_exact``),
    and the fraction of the result's digits right, aligned from the units
    (``digit_acc``). ``skip_scratch``: the prompt ends ``=|``, so a scratchpad model
    must state the result without its steps (the ablation)."""
    groups: dict[int, list[int]] = {}
    prompts = [p.prompt + ("|" if skip_scratch else "") for p in problems]
    for i, text in enumerate(prompts):
        groups.setdefault(len(text), []).append(i)
    K, N = ens.size, len(problems)
    exact = torch.zeros(K, N, dtype=torch.bool)
    whole = torch.zeros(K, N, dtype=torch.bool)
    digits = torch.zeros(K, N, dtype=torch.float64)
    shown = "plain" if skip_scratch else fmt
    for rows in groups.values():
        want = [output(problems[i], fmt) for i in rows]
        if skip_scratch:
            want = [w.split("|", 1)[1] for w in want]
        n_new = max(len(w) for w in want) + 1
        x = torch.tensor([encode(prompts[i]) for i in rows])
        dev = next(iter(ens.params.values())).device
        gen = generate(ens, x.to(dev), n_new).cpu()
        for k in range(K):
            for j, i in enumerate(rows):
                text = decode(gen[k, j].tolist())
                truth = str(problems[i].result)
                said = answer_of(text, shown)
                exact[k, i] = said == truth
                whole[k, i] = text.split("#", 1)[0] + "#" == want[j] if "#" in text else False
                digits[k, i] = _digit_acc(said or "", truth)
    return {"exact": exact, "output_exact": whole, "digit_acc": digits}


def _digit_acc(said: str, truth: str) -> float:
    a, t = said[::-1], truth[::-1]
    return sum(1 for i, c in enumerate(t) if i < len(a) and a[i] == c) / len(t)
