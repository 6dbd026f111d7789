"""Unlearning methods: each a small loss on a forget batch (and a retain batch), as
open-unlearning writes them. :func:`.unlearn.unlearn` is the one loop that minimises any
of them.

* ``ga`` — gradient ascent: minus the mean token NLL of the forget answers.
* ``grad_diff`` — GA plus the NLL of retain answers (α = 1).
* ``kl`` — GA plus KL(reference ‖ model) on retain tokens (TOFU's "KL minimisation").
* ``npo`` — Negative Preference Optimization (Zhang et al. 2024):
  ``-(2/β) log σ(-β (log π(y|x) - log π_ref(y|x)))`` with sequence log-likelihoods,
  β = 0.1; as β → 0 its gradient is GA's on the summed NLL (their Prop. 1).
* ``npo_rt`` — NPO plus the retain NLL.
* ``simnpo`` — SimNPO (Fan et al. 2024): NPO without a reference, on the length-
  normalised NLL with margin δ: ``-(2/β) log σ(β (NLL/|y| - δ))`` (β = 4.5, δ = 0), times
  γ = 0.125, plus the retain NLL (open-unlearning's defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fmlab.studies.unlearning.lm import LM, Batch, sequence_nll


@dataclass
class Step:
    """What a method's loss sees at one step."""

    lm: LM
    forget: Batch
    retain: Batch | None = None
    ref: LM | None = None  # the model before unlearning (frozen)
    beta: float = 0.1
    alpha: float = 1.0  # weight of the retain term


@dataclass(frozen=True)
class Method:
    loss: Callable[[Step], Tensor]
    ref: bool = False  # needs the frozen reference model
    retain: bool = False  # needs retain batches


def mean_token_nll(lm: LM, batch: Batch) -> Tensor:
    """A causal LM's ``outputs.loss``: the NLL averaged over every answer token."""
    nll, n = sequence_nll(lm, batch)
    return nll.sum() / n.sum().clamp_min(1)


def ga(s: Step) -> Tensor:
    return -mean_token_nll(s.lm, s.forget)


def grad_diff(s: Step) -> Tensor:
    return ga(s) + s.alpha * mean_token_nll(s.lm, s.retain)


def kl_retain(s: Step) -> Tensor:
    """KL(reference ‖ model) per scored position of the retain batch."""
    b = s.retain.to(next(s.lm.model.parameters()).device)
    logits = s.lm.call(s.lm.model, b.ids[:, :-1], b.attn[:, :-1]).float()
    with torch.no_grad():
        ref = s.ref.call(s.ref.model, b.ids[:, :-1], b.attn[:, :-1]).float()
    mask = b.attn[:, 1:].bool()
    logq, logp = F.log_softmax(logits[mask], -1), F.log_softmax(ref[mask], -1)
    return F.kl_div(logq, logp, reduction="batchmean", log_target=True)


def kl(s: Step) -> Tensor:
    return ga(s) + s.alpha * kl_retain(s)


def npo_forget(s: Step) -> Tensor:
    nll, _ = sequence_nll(s.lm, s.forget)
    with torch.no_grad():
        ref_nll, _ = sequence_nll(s.ref, s.forget)
    return -(2 / s.beta) * F.logsigmoid(s.beta * (nll - ref_nll)).mean()


def npo(s: Step) -> Tensor:
    return npo_forget(s)


def npo_rt(s: Step) -> Tensor:
    return npo_forget(s) + s.alpha * mean_token_nll(s.lm, s.retain)


SIMNPO_GAMMA, SIMNPO_DELTA = 0.125, 0.0


def simnpo(s: Step) -> Tensor:
    nll, n = sequence_nll(s.lm, s.forget)
    x = nll / n.clamp_min(1) - SIMNPO_DELTA
    forget = -(2 / s.beta) * F.logsigmoid(s.beta * x).mean()
    return SIMNPO_GAMMA * forget + s.alpha * mean_token_nll(s.lm, s.retain)


METHODS: dict[str, Method] = {
    "ga": Method(ga),
    "grad_diff": Method(grad_diff, retain=True),
    "kl": Method(kl, ref=True, retain=True),
    "npo": Method(npo, ref=True),
    "npo_rt": Method(npo_rt, ref=True, retain=True),
    "simnpo": Method(simnpo, retain=True),
}
