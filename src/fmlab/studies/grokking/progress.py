"""Nanda et al. 2023's progress measures over a grokking run, and the phases they mark.

During training each member records, at a regular subset of its eval steps (at most
:data:`MAX_SNAPSHOTS`, always including its last), what the measures need: the logits'
components along every cos/sin(w_k(a+b)) and their mean (for the restricted loss), its
training-set logits (for the excluded loss) and the Fourier norms of W_E and of the
neuron-logit map W_L. When it has finished, the key frequencies are read from the
*final* model's MLP neurons — as the authors did, from the last checkpoint — and the
measures are computed for every recorded step with that one set of frequencies.

Phases, estimated from each seed's own curves (all on the recorded steps):

* ``t_mem`` — first recorded step at or after train accuracy reaches 99 %;
* the fall of a loss curve x: from its maximum at or after ``t_mem`` to its last value,
  on a log scale; ``t_q(x)`` is the first step at which x has made the fraction q of it;
* circuit formation is ``[t_mem, t_clean]`` with ``t_clean = t_0.1(test loss)`` — the
  test loss has begun to fall (clean-up starts);
* ``excluded_rise_vs_train`` = Δlog10 excluded loss − |Δlog10 train loss| over circuit
  formation (decades; the authors plot both on a log axis): positive when the excluded
  loss rises by more than the train loss moves, either way (the changes in nats are
  reported beside it);
* ``restricted_lead`` = (t_0.5(test loss) − t_0.5(restricted loss)) / (t_0.5(test loss) −
  t_mem): positive when the restricted loss is half-way down before the test loss is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from fmlab.hooks import capture
from fmlab.measure.progress import (
    NEURON_CLUSTER_SHARE,
    SumComponents,
    component_norms,
    excluded_loss,
    gini,
    key_share,
    neuron_frequencies,
    restricted_loss,
    sum_components,
)
from fmlab.tasks.modular import ModularData

MAX_SNAPSHOTS = 120
CLEAN_START = 0.1  # share of its (log) fall the test loss has made when clean-up starts
HALF = 0.5


def applies(data: ModularData, model_cfg: Any) -> bool:
    """The measures are defined for addition over all p² pairs of an odd p, with an MLP."""
    return data.op == "add" and data.p % 2 == 1 and model_cfg.d_mlp > 0


def grid_rows(data: ModularData) -> tuple[torch.Tensor, torch.Tensor]:
    """Row a·p + b of each training and each test pair in the full table."""
    p = data.p
    return (
        data.train_x[:, 0] * p + data.train_x[:, 1],
        data.test_x[:, 0] * p + data.test_x[:, 1],
    )


def all_pairs(data: ModularData) -> torch.Tensor:
    """The p² inputs ``[a, b, =]`` in row-major order (p², 3)."""
    a = torch.arange(data.p)
    pairs = torch.cartesian_prod(a, a)
    eq = torch.full((len(pairs), 1), data.p)
    return torch.cat([pairs, eq], dim=1).to(data.train_x.device)


def neuron_logit_map(state: dict[str, torch.Tensor], n_layers: int) -> torch.Tensor:
    """W_L = W_out W_U of the last block, as (V, d_mlp): rows indexed by the output."""
    w_out = state[f"blocks.{n_layers - 1}.mlp.w_out.weight"]  # (d_mlp, D)
    w_u = state["W_U"] if "W_U" in state else state["W_E"].T  # (D, V)
    return (w_out.detach().double() @ w_u.detach().double()).T


@dataclass
class Progress:
    """One member's recorded snapshots (kept in the loop's checkpoint: tensors on CPU)."""

    every: int  # record every ``every``-th eval step
    steps: list[int] = field(default_factory=list)
    coeffs: list[torch.Tensor] = field(default_factory=list)
    means: list[torch.Tensor] = field(default_factory=list)
    train_logits: list[torch.Tensor] = field(default_factory=list)
    embed: list[torch.Tensor] = field(default_factory=list)
    unembed: list[torch.Tensor] = field(default_factory=list)
    curves: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def for_steps(cls, steps: int, eval_every: int) -> Progress:
        evals = steps // eval_every + 1
        return cls(every=max(1, math.ceil(evals / MAX_SNAPSHOTS)))

    def due(self, step: int, eval_every: int, last: bool) -> bool:
        return last or (step // eval_every) % self.every == 0

    def record(self, step, train_logits, test_logits, data, state, n_layers, metrics) -> None:
        """Keep what the measures need at ``step`` (logits (N, V) of each split)."""
        p = data.p
        rows_train, rows_test = grid_rows(data)
        table = torch.empty(p * p, train_logits.shape[-1], dtype=torch.float64)
        table[rows_train.cpu()] = train_logits.detach().double().cpu()
        table[rows_test.cpu()] = test_logits.detach().double().cpu()
        parts = sum_components(table, p)
        if self.steps and self.steps[-1] == step:
            return
        self.steps.append(step)
        self.coeffs.append(parts.coeffs.float())
        self.means.append(parts.mean)
        self.train_logits.append(train_logits.detach().float().cpu().clone())
        self.embed.append(component_norms(state["W_E"].detach().cpu(), p).float())
        self.unembed.append(component_norms(neuron_logit_map(state, n_layers).cpu(), p).float())
        self.curves.append({k: float(metrics[k]) for k in ("train_loss", "test_loss")})


def final_activations(model: torch.nn.Module, data: ModularData, n_layers: int) -> torch.Tensor:
    """The last block's MLP neurons at the answer position on all p² pairs (p², d_mlp)."""
    site = f"blocks.{n_layers - 1}.mlp.post"
    return capture(model, all_pairs(data), [site])[site][:, -1].cpu()


def measures(progress: Progress, keys: list[int], data: ModularData) -> list[dict[str, float]]:
    """The progress measures at each recorded step, for the key frequencies ``keys``."""
    rows_train, _ = grid_rows(data)
    rows_train = rows_train.cpu()
    out = []
    for i in range(len(progress.steps)):
        parts = SumComponents(progress.coeffs[i].double(), progress.means[i])
        out.append(
            {
                "restricted_loss": restricted_loss(parts, keys),
                "excluded_loss": excluded_loss(progress.train_logits[i], parts, keys, rows_train),
                "gini_embed": gini(progress.embed[i]),
                "gini_unembed": gini(progress.unembed[i]),
                "key_share_embed": key_share(progress.embed[i], keys),
                "key_share_unembed": key_share(progress.unembed[i], keys),
            }
        )
    return out


def fall_step(steps: list[int], values: list[float], start: int, q: float) -> int | None:
    """First step at or after the curve's maximum (from ``start`` on) by which its log
    has made the share ``q`` of its fall to its last value; None if it does not fall."""
    idx = [i for i, s in enumerate(steps) if s >= start]
    if len(idx) < 2:
        return None
    logs = [math.log(max(values[i], 1e-300)) for i in idx]
    peak = max(range(len(idx)), key=lambda j: logs[j])
    drop = logs[peak] - logs[-1]
    if drop <= 0:
        return None
    for j in range(peak, len(idx)):
        if logs[peak] - logs[j] >= q * drop:
            return steps[idx[j]]
    return None


def phases(progress: Progress, rows: list[dict[str, float]], train99: int | None) -> dict[str, Any]:
    """The phase boundaries and the two phase statistics of one member (None where a
    boundary was not reached)."""
    steps = progress.steps
    test = [c["test_loss"] for c in progress.curves]
    train = [c["train_loss"] for c in progress.curves]
    excluded = [r["excluded_loss"] for r in rows]
    restricted = [r["restricted_loss"] for r in rows]
    t_mem = next((s for s in steps if train99 is not None and s >= train99), None)
    out: dict[str, Any] = dict.fromkeys(
        (
            "t_mem",
            "t_clean",
            "t_half_test",
            "t_half_restricted",
            "excluded_rise",
            "train_change",
            "excluded_rise_vs_train",
            "excluded_change_nats",
            "train_change_nats",
            "restricted_lead",
        )
    )
    if t_mem is None:
        return out
    out["t_mem"] = t_mem
    t_clean = fall_step(steps, test, t_mem, CLEAN_START)
    if t_clean is not None and t_clean > t_mem:
        i0, i1 = steps.index(t_mem), steps.index(t_clean)
        rise = math.log10(excluded[i1] / excluded[i0])
        change = math.log10(train[i1] / train[i0])
        out |= {
            "t_clean": t_clean,
            "excluded_rise": rise,
            "train_change": change,
            "excluded_rise_vs_train": rise - abs(change),
            "excluded_change_nats": excluded[i1] - excluded[i0],
            "train_change_nats": train[i1] - train[i0],
        }
    half_test = fall_step(steps, test, t_mem, HALF)
    half_restricted = fall_step(steps, restricted, t_mem, HALF)
    out["t_half_test"], out["t_half_restricted"] = half_test, half_restricted
    if half_test is not None and half_restricted is not None and half_test > t_mem:
        out["restricted_lead"] = (half_test - half_restricted) / (half_test - t_mem)
    return out


def finish(member, progress: Progress, model, data: ModularData, n_layers: int, train99):
    """Key frequencies of the final ``model``; log the measures at the recorded steps;
    return the member's summary numbers and what to save."""
    nf = neuron_frequencies(final_activations(model, data, n_layers), data.p)
    keys = nf.key_frequencies()
    rows = measures(progress, keys, data)
    for step, row in zip(progress.steps, rows, strict=True):
        member.run.log(step, row, seed=member.seed, variant=member.variant, **member.tags)
    clean = sum(share >= NEURON_CLUSTER_SHARE for share in nf.share) / len(nf.share)
    summary = {"n_key_freqs": len(keys), "neurons_in_clusters": clean}
    summary |= {f"{k}_final": v for k, v in rows[-1].items()}
    summary |= {k: v for k, v in phases(progress, rows, train99).items()}
    saved = {
        "key_frequencies": keys,
        "neuron_frequency": list(nf.frequency),
        "neuron_share": list(nf.share),
        "embed_norms_final": progress.embed[-1].tolist(),
        "unembed_norms_final": progress.unembed[-1].tolist(),
    }
    return summary, saved
