"""The metrics Schaeffer et al. 2023 contrast, all on the same model outputs, per problem.

Discontinuous (a problem scores 0 or 1):

* **exact match**: the greedy answer equals the target, all ``L`` tokens;
* **multiple-choice accuracy**: the option of highest total log-probability is the true one.

Continuous:

* **per-token accuracy**: the share of answer positions whose argmax (given the true
  prefix, i.e. teacher-forced) is the target token. Greedy decoding gets the whole answer
  right exactly when every teacher-forced argmax is right, so exact match is the
  conjunction of these per-token events: under independent errors ``EM = Π_i acc_i``,
  and ``≈ acc^L`` (Schaeffer et al. 2023, eq. 2);
* **token edit distance**: Levenshtein distance between greedy answer and target tokens;
* **Brier score** of the multiple-choice probabilities (softmax of the options'
  log-probabilities): ``Σ_k (p_k - 1[k = true])²``;
* **target log-probability**: ``Σ_i log p(target_i | prompt, target_<i)``.

Everything here is plain tensor/array math; :mod:`.evaluate` feeds it a model's outputs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def exact_match(pred: Tensor, target: Tensor) -> Tensor:
    """(n, L), (n, L) tokens → (n,) float: 1 where every token agrees."""
    return (pred == target).all(-1).float()


def token_accuracy(correct: Tensor) -> Tensor:
    """(n, L) per-position correctness → (n,) share of correct positions."""
    return correct.float().mean(-1)


def product_of_accuracies(correct: Tensor) -> float:
    """``Π_i acc_i``: the exact-match rate if positions erred independently; ``correct``
    is (n, L) per-position correctness over n problems."""
    return float(correct.float().mean(0).prod())


def edit_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> np.ndarray:
    """Levenshtein distance (insert, delete, substitute: cost 1) between the rows of
    ``a`` (n, La) and ``b`` (n, Lb), batched over rows: the Wagner-Fischer table filled one
    row at a time for all pairs at once. Returns (n,) int64."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"need (n, La) and (n, Lb) token arrays, got {a.shape} and {b.shape}")
    n, lb = a.shape[0], b.shape[1]
    prev = np.broadcast_to(np.arange(lb + 1), (n, lb + 1)).copy()  # row 0: j insertions
    for i in range(a.shape[1]):
        cur = np.empty_like(prev)
        cur[:, 0] = i + 1
        sub = prev[:, :-1] + (a[:, i : i + 1] != b)  # (n, Lb)
        best = np.minimum(sub, prev[:, 1:] + 1)  # substitute / match, or delete a[i]
        for j in range(lb):  # insert b[j]: depends on the cell to the left
            cur[:, j + 1] = np.minimum(best[:, j], cur[:, j] + 1)
        prev = cur
    return prev[:, -1].astype(np.int64)


def choice_probs(option_logp: Tensor) -> Tensor:
    """(n, K) total log-probabilities of the options → (n, K) probabilities over them."""
    return torch.softmax(option_logp.double(), -1)


def mc_correct(option_logp: Tensor, label: Tensor) -> Tensor:
    """(n,) float: the most probable option is the true one."""
    return (option_logp.argmax(-1) == label).float()


def brier(probs: Tensor, label: Tensor) -> Tensor:
    """(n, K) probabilities, (n,) true index → (n,) ``Σ_k (p_k - 1[k = y])²`` (in [0, 2])."""
    onehot = torch.nn.functional.one_hot(label, probs.shape[-1]).to(probs.dtype)
    return ((probs - onehot) ** 2).sum(-1)
