"""Preference losses on sequence log-likelihoods: pure functions, tensors in, tensors out.

With ``h = (log π(y_w|x) - log π_ref(y_w|x)) - (log π(y_l|x) - log π_ref(y_l|x))``, the
difference of the chosen and rejected completions' log-ratios:

* DPO (Rafailov et al. 2023, eq. 7): ``-log σ(β h)``. Its minimiser over a pair is
  ``h → +∞`` — the loss only vanishes as the margin grows without bound.
* IPO (Azar et al. 2023, eq. 17, τ written β here as in ``trl``): ``(h - 1/(2β))²``,
  minimal exactly at the margin ``h* = 1/(2β)`` whatever the labels, so the policy
  cannot run away from the reference on deterministic preferences.
* Bradley–Terry reward-model loss (Christiano et al. 2017; Ouyang et al. 2022):
  ``-log σ(r_w - r_l)``.

``trl``'s ``DPOTrainer`` sums token log-probabilities for DPO and averages them over the
completion's tokens for IPO; :func:`ipo_loss` takes whichever the caller computed.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def margin(pi_w: Tensor, pi_l: Tensor, ref_w: Tensor, ref_l: Tensor) -> Tensor:
    """``h``: the chosen log-ratio minus the rejected one, per pair."""
    return (pi_w - ref_w) - (pi_l - ref_l)


def dpo_loss(pi_w: Tensor, pi_l: Tensor, ref_w: Tensor, ref_l: Tensor, beta: float) -> Tensor:
    """Per-pair DPO loss ``-log σ(β h)``."""
    return -F.logsigmoid(beta * margin(pi_w, pi_l, ref_w, ref_l))


def ipo_loss(pi_w: Tensor, pi_l: Tensor, ref_w: Tensor, ref_l: Tensor, beta: float) -> Tensor:
    """Per-pair IPO loss ``(h - 1/(2β))²``."""
    return (margin(pi_w, pi_l, ref_w, ref_l) - 1.0 / (2.0 * beta)) ** 2


def bt_loss(r_w: Tensor, r_l: Tensor) -> Tensor:
    """Per-pair Bradley–Terry negative log-likelihood of the observed preference."""
    return -F.logsigmoid(r_w - r_l)


PAIR_LOSSES = {"dpo": dpo_loss, "ipo": ipo_loss}
