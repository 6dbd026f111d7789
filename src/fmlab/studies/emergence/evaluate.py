"""Scoring a batch of models on a task's evaluation problems: one set of outputs, every
metric of :mod:`.metrics` on it.

``call(x)`` maps (B, T) tokens to (K, B, T, V) logits of K models (the members of an
ensemble, or one model with K = 1: :func:`single`); ``call(x, stacked=True)`` gives
member k the input ``x[k]`` (K, B, T). Per model and problem: greedy answer, teacher-forced
per-position correctness and log-probabilities of the target, the options' total
log-probabilities. Returned arrays are (K, n) or (K, n, L) float64 numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fmlab.studies.emergence import metrics as M
from fmlab.studies.emergence.arithmetic import Problems

Call = Callable[..., Tensor]


def single(model: torch.nn.Module) -> Call:
    """One model as a K = 1 batch."""

    def call(x: Tensor, stacked: bool = False) -> Tensor:
        return model(x[0] if stacked else x)[None]

    return call


@dataclass(frozen=True)
class EvalSet:
    problems: Problems
    options: Tensor  # (n, C, L)
    label: Tensor  # (n,)


@torch.no_grad()
def _answer_logp(call: Call, prompt: Tensor, answer: Tensor) -> Tensor:
    """(K, n, L) log p(answer_i | prompt, answer_<i) under each model."""
    P, _L = prompt.shape[1], answer.shape[1]
    x = torch.cat([prompt, answer[:, :-1]], 1)  # (n, P + L - 1)
    logits = call(x)[:, :, P - 1 :].double()  # (K, n, L, V)
    logp = logits.log_softmax(-1)
    return logp, logp.gather(-1, answer[None, :, :, None].expand(logp.shape[0], -1, -1, 1))[..., 0]


@torch.no_grad()
def greedy(call: Call, prompt: Tensor, L: int) -> Tensor:
    """(K, n, L) greedy answers of each model."""
    K = call(prompt[:1]).shape[0]
    x = prompt[None].expand(K, -1, -1)  # (K, n, P)
    for _ in range(L):
        out = call(x, stacked=True)[:, :, -1]  # (K, n, V): member k reads x[k]
        x = torch.cat([x, out.argmax(-1, keepdim=True)], -1)
    return x[..., prompt.shape[1] :]


def score(call: Call, ev: EvalSet) -> dict[str, np.ndarray]:
    """Every metric, per model and problem."""
    p = ev.problems
    logp_all, logp = _answer_logp(call, p.prompt, p.answer)  # (K, n, L, V), (K, n, L)
    correct = logp_all.argmax(-1) == p.answer[None]  # (K, n, L) teacher-forced
    gen = greedy(call, p.prompt, p.answer.shape[1])  # (K, n, L)
    n, C, L = ev.options.shape
    _, opt_lp = _answer_logp(
        call, p.prompt.repeat_interleave(C, 0), ev.options.reshape(n * C, L)
    )  # (K, n C, L)
    option_logp = opt_lp.sum(-1).reshape(-1, n, C)  # (K, n, C)
    probs = M.choice_probs(option_logp)
    K = correct.shape[0]
    edit = np.stack([M.edit_distance(gen[k].numpy(), p.answer.numpy()) for k in range(K)])
    out = {
        "em": M.exact_match(gen, p.answer[None].expand_as(gen)),
        "em_tf": correct.all(-1).float(),
        "tok_acc": M.token_accuracy(correct),
        "gen_tok_acc": (gen == p.answer[None]).float().mean(-1),
        "edit": torch.from_numpy(edit).double(),
        "logp": logp.sum(-1),
        "mc_acc": M.mc_correct(option_logp, ev.label[None].expand(K, -1)),
        "brier": M.brier(probs, ev.label[None].expand(K, -1)),
        "mc_conf": probs.max(-1).values,
        "tok_correct": correct.double(),  # (K, n, L)
        "mc_probs": probs,  # (K, n, C)
    }
    return {k: v.double().numpy() for k, v in out.items()}
