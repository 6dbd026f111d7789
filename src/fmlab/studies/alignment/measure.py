"""What alignment did to a policy beyond its reward: calibration of its next-token
probabilities on held-out text of the language, and where its top-1 token moved away
from the base model's (URIAL's token distribution shift, Lin et al. 2023 §2).

Token shift follows URIAL: the aligned policy decodes greedily from each prompt; at every
completion position the base model reads the same context, and the aligned token's rank
under the base distribution makes the position *unshifted* (rank 1), *marginal* (2–3) or
*shifted* (> 3). "Top-1 changed" is marginal or shifted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fmlab.measure.calibration import ece, reliability_diagram
from fmlab.studies.alignment.policy import sample, token_logprobs


@torch.no_grad()
def calibration(model: nn.Module, text: Tensor, n_bins: int) -> dict[str, Any]:
    """Top-label ECE (equal-width bins) of next-token probabilities on held-out ``text``
    (every position), with the reliability diagram's bins."""
    probs = token_logprobs(model, text).exp().flatten(0, 1).double().numpy()  # (n, V)
    labels = text[:, 1:].flatten().numpy()
    d = reliability_diagram(probs, labels, n_bins)
    return {
        "ece": ece(probs, labels, n_bins),
        "accuracy": float((probs.argmax(1) == labels).mean()),
        "confidence": float(probs.max(1).mean()),
        "bins": {
            "confidence": _nan_none(d.confidence),
            "accuracy": _nan_none(d.accuracy),
            "count": d.count.tolist(),
        },
    }


@torch.no_grad()
def token_shift(
    aligned: nn.Module, base: nn.Module, prompts: Tensor, gen_len: int, good: Tensor
) -> dict[str, Any]:
    """URIAL's position types on the aligned policy's greedy completions, per position of
    the completion and overall, and what the changed positions are: how often their aligned
    token is a reward token, and the base model's entropy there."""
    P = prompts.shape[1]
    ids = sample(aligned, prompts, gen_len, greedy=True)
    lb = token_logprobs(base, ids)[:, P - 1 :]  # (B, L, V) base, on the aligned contexts
    tok = ids[:, P:]  # (B, L) aligned tokens (its argmax)
    rank = 1 + (lb > lb.gather(-1, tok[..., None])).sum(-1)  # (B, L)
    changed = rank > 1
    entropy = -(lb.exp() * lb).sum(-1)
    is_good = good[tok]
    frac = lambda m: float(m.float().mean())  # noqa: E731
    mean_where = lambda x, m: float(x[m].mean()) if bool(m.any()) else None  # noqa: E731
    return {
        "unshifted": frac(rank == 1),
        "marginal": frac((rank > 1) & (rank <= 3)),
        "shifted": frac(rank > 3),
        "changed": frac(changed),
        "changed_by_position": changed.float().mean(0).tolist(),
        "good_among_changed": mean_where(is_good.float(), changed),
        "good_among_unchanged": mean_where(is_good.float(), ~changed),
        "entropy_changed": mean_where(entropy, changed),
        "entropy_unchanged": mean_where(entropy, ~changed),
    }


def _nan_none(x: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in x]
