"""Policies over the Markov language: sampling completions, their log-likelihoods, the
exact KL to the reference along a sample, and the true reward.

A sequence is ``prompt (P tokens) + completion (L tokens)``; a policy is fmlab's GPT read
causally. The KL of the policy from the reference over completions is

    KL(π ‖ π_ref) = E_{y~π} Σ_t KL(π(·|x, y_<t) ‖ π_ref(·|x, y_<t)),

whose inner sums are computed exactly over the vocabulary at every position of a sample
(a Rao–Blackwellised estimator: unbiased, and much less noisy than ``log π(y) - log
π_ref(y)``, which can be negative on one sample).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def token_logprobs(model: nn.Module, ids: Tensor) -> Tensor:
    """(B, T) tokens → (B, T-1, V) float log-probabilities of each next token."""
    return F.log_softmax(model(ids[:, :-1]).float(), -1)


def completion_logps(model: nn.Module, ids: Tensor, n_prompt: int) -> Tensor:
    """(B,) summed log-probability of the completion tokens ``ids[:, n_prompt:]``."""
    lp = token_logprobs(model, ids)
    tok = lp.gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1)
    return tok[:, n_prompt - 1 :].sum(1)


@torch.no_grad()
def sample(
    model: nn.Module,
    prompts: Tensor,
    gen_len: int,
    generator: torch.Generator | None = None,
    *,
    greedy: bool = False,
) -> Tensor:
    """(B, P) prompts → (B, P + L) with ``L = gen_len`` tokens drawn from ``model``
    (or its argmax with ``greedy``); the draws come from ``generator`` alone (on CPU)."""
    ids = prompts
    for _ in range(gen_len):
        logits = model(ids, last_only=True)[:, -1].double().cpu()  # (B, V)
        if greedy:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
        ids = torch.cat([ids, nxt.to(ids.device)], 1)
    return ids


@torch.no_grad()
def kl_along(policy: nn.Module, ref: nn.Module, ids: Tensor, n_prompt: int) -> Tensor:
    """(B,) Σ over completion positions of KL(π(·|context) ‖ π_ref(·|context))."""
    lp = token_logprobs(policy, ids)[:, n_prompt - 1 :]  # (B, L, V)
    lq = token_logprobs(ref, ids)[:, n_prompt - 1 :]
    return (lp.exp() * (lp - lq)).sum(-1).sum(-1)


def true_reward(ids: Tensor, n_prompt: int, good: Tensor) -> Tensor:
    """(B,) the fraction of completion tokens in the reward set ``good`` (a (V,) mask)."""
    return good[ids[:, n_prompt:]].float().mean(1)


def win_rate(r_policy: Tensor, r_ref: Tensor) -> float:
    """Fraction of prompts where the policy's completion beats the reference's (ties ½)."""
    return float(((r_policy > r_ref).float() + 0.5 * (r_policy == r_ref).float()).mean())
