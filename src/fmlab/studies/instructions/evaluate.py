"""Zero-shot accuracy of every member on four sets, by greedy decoding.

* ``single``: the single primitives (every model was trained on them);
* ``trained``: compositions of the member's own training clusters, in their trained order;
* ``reversed``: the other order of the training clusters of the largest k (a
  composition never seen in that order; Sanh et al. 2022's held-out prompts);
* ``heldout``: the held-out clusters, both orders (Wei et al. 2022's unseen task types).

A row counts as correct when the decoded final string (after ``;`` for a composition)
equals the true one, digit for digit (exact match); the scratchpad is not graded. Each
seed's sets are drawn once and shared by its members, so the comparison across k is
paired item by item.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fmlab.studies.instructions.task import Rows, Split, compositions, singles
from fmlab.train.ensemble import Ensemble

SETS = ("single", "trained", "reversed", "heldout")


def eval_rows(cfg, split: Split, seed: int, k: int, kind: str) -> Rows | None:
    """The ``n_eval`` rows of one set (None where it is empty: ``trained`` at k = 0)."""
    g = torch.Generator().manual_seed(55_001 * seed + 7 + (k if kind == "trained" else 0))
    g.manual_seed(g.initial_seed() + SETS.index(kind) * 1_000_003)
    n, L = cfg.n_eval, cfg.length
    if kind == "single":
        return singles(n, L, g)
    pairs = {
        "trained": split.trained(k),
        "reversed": split.reversed_order(max(cfg.ks)),
        "heldout": split.heldout_ordered(),
    }[kind]
    if not pairs:
        return None
    return compositions(torch.tensor(pairs, dtype=torch.long), n, L, g)


@torch.no_grad()
def greedy(ens: Ensemble, prompts: Tensor, n_new: int, chunk: int) -> Tensor:
    """(K, N, P) prompts → (K, N, n_new) greedy continuations, ``chunk`` rows at a time."""
    outs = []
    for lo in range(0, prompts.shape[1], chunk):
        ids = prompts[:, lo : lo + chunk]
        for _ in range(n_new):
            nxt = ens(ids, stacked=True)[..., -1, :].argmax(-1)  # (K, n)
            ids = torch.cat([ids, nxt[..., None]], -1)
        outs.append(ids[..., prompts.shape[2] :])
    return torch.cat(outs, 1)


def final_correct(rows: Rows, generated: Tensor, length: int) -> Tensor:
    """(K, N) bool: the final string (the last ``length`` digits before ``<eos>``) is right."""
    truth = rows.ids[:, rows.prompt :]  # (N, A)
    end = truth.shape[1] - 1  # the <eos> position
    sl = slice(end - length, end)
    return (generated[..., sl] == truth[None, :, sl]).all(-1)


def accuracies(cfg, ens: Ensemble, members, splits: dict[int, Split]) -> dict:
    """{kind: (K, N) bool correctness} for every set; a member without a set gets None."""
    out: dict[str, list[Tensor | None]] = {}
    for kind in SETS:
        rows = [eval_rows(cfg, splits[m.seed], m.seed, m.k, kind) for m in members]
        have = [r for r in rows if r is not None]
        if not have:
            out[kind] = [None] * len(members)
            continue
        # members without this set decode a stand-in (any member's rows) that is dropped
        filled = [r if r is not None else have[0] for r in rows]
        prompts = torch.stack([r.ids[:, : r.prompt] for r in filled])
        gen = greedy(ens, prompts, filled[0].ids.shape[1] - filled[0].prompt, cfg.eval_chunk)
        out[kind] = [
            final_correct(r, gen[i : i + 1], cfg.length)[0] if rows[i] is not None else None
            for i, r in enumerate(filled)
        ]
    return out
