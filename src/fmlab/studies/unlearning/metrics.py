"""TOFU's metrics (Maini et al. 2024) as open-unlearning computes them, and the
membership-inference scores (Shi et al. 2024; Carlini et al. 2021): numbers in, numbers
out. :mod:`.evaluate` feeds them a model's log-probabilities.

* probability of an answer: ``exp(-mean token NLL)`` (length-normalised);
* truth ratio per question: ``exp(-mean_j L(perturbed_j)) / exp(-L(paraphrase))`` with
  ``L`` the mean token NLL (open-unlearning averages the perturbed answers' losses,
  then exponentiates); summarised on the forget set as ``mean(min(R, 1/R))`` and on
  retain/world data as ``mean(max(0, 1 - R))``;
* forget quality: the p-value of the two-sample KS test between the unlearned and the
  retrained model's truth ratios on the forget set;
* model utility: the harmonic mean of its parts (probability, ROUGE-L recall, truth
  ratio on each utility set);
* MIA: scores where *lower means member*; AUC = P(a held-out item scores above a forget
  item), so 1 means the forget set is recognised (open-unlearning's convention).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence

import numpy as np
from scipy import stats

TINY = 1e-10  # open-unlearning's guard against division by zero


def probability(avg_nll: np.ndarray) -> np.ndarray:
    return np.exp(-np.asarray(avg_nll, dtype=float))


def truth_ratio(para_nll: np.ndarray, pert_nll: np.ndarray) -> np.ndarray:
    """Per question: (N,) paraphrase and (N, P) perturbed mean token NLLs -> R (N,)."""
    wrong = np.exp(-np.asarray(pert_nll, dtype=float).reshape(len(para_nll), -1).mean(1))
    return wrong / (np.exp(-np.asarray(para_nll, dtype=float)) + TINY)


def tr_forget(r: np.ndarray) -> float:
    """Forget set: best when perturbed and true answers are equally likely."""
    r = np.asarray(r, dtype=float)
    return float(np.mean(np.minimum(r, 1 / (r + TINY))))


def tr_utility(r: np.ndarray) -> float:
    """Retain/world sets: best when the true answer is far likelier."""
    return float(np.mean(np.maximum(0.0, 1 - np.asarray(r, dtype=float))))


def prob_with_options(correct_nll: np.ndarray, wrong_nll: np.ndarray) -> float:
    """World facts: P(true) / (P(true) + Σ P(perturbed)), normalised probabilities."""
    c = probability(correct_nll)
    w = probability(wrong_nll).reshape(len(c), -1).sum(1)
    return float(np.mean(c / (c + w + TINY)))


def harmonic_mean(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=float)
    if np.any(v <= 0):
        return 0.0
    return float(len(v) / np.sum(1 / v))


def ks_statistic(x: np.ndarray, y: np.ndarray) -> float:
    """sup |F_x - F_y| over the pooled sample (ties handled as ECDF steps)."""
    x, y = np.sort(np.asarray(x, float)), np.sort(np.asarray(y, float))
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / len(x)
    fy = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(fx - fy)))


EXACT_KS_CELLS = 1_000_000  # m·n up to which the p-value is exact


def ks_pvalue(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided two-sample KS p-value, exact for m·n <= 10^6 (scipy's ``auto`` is exact
    there too): the share of the C(m+n, n) monotone lattice paths from (0, 0) to (m, n)
    that leave the band |i/m - j/n| < D. With Q(i, j) the share of paths to (i, j) that
    have left it, Q = 1 outside the band and Q(i, j) = (i Q(i-1, j) + j Q(i, j-1)) / (i+j)
    inside — a sum of positive terms, so tiny p-values (log forget quality) keep their
    precision. Larger samples use the asymptotic law at size round(mn/(m+n))."""
    m, n = len(x), len(y)
    d = ks_statistic(x, y)
    if m * n > EXACT_KS_CELLS:
        return float(min(1.0, stats.kstwo.sf(d, round(m * n / (m + n)))))
    band = round(d * m * n)  # integer form of the band: |i·n - j·m| < D·m·n
    prev = [0.0] * (n + 1)
    for i in range(m + 1):
        cur = [0.0] * (n + 1)
        for j in range(n + 1):
            if abs(i * n - j * m) >= band:
                cur[j] = 1.0
            elif i or j:
                cur[j] = ((i * prev[j] if i else 0.0) + (j * cur[j - 1] if j else 0.0)) / (i + j)
        prev = cur
    return float(min(1.0, prev[n]))


def forget_quality(tr_unlearned: np.ndarray, tr_retrained: np.ndarray) -> float:
    return ks_pvalue(tr_unlearned, tr_retrained)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def rouge_l_recall(prediction: str, reference: str) -> float:
    """LCS(prediction, reference) / |reference| over lower-case word tokens."""
    p, r = _words(prediction), _words(reference)
    if not r:
        return 0.0
    prev = [0] * (len(p) + 1)
    for a in r:
        cur = [0]
        for j, b in enumerate(p):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1] / len(r)


def min_k_score(token_logprobs: np.ndarray, k: float = 0.4) -> float:
    """Min-k % prob (Shi et al. 2024): minus the mean of the lowest k fraction of the
    token log-probabilities (at least one token). Lower means member."""
    lp = np.sort(np.asarray(token_logprobs, dtype=float))
    if lp.size == 0:
        return 0.0
    return float(-lp[: max(1, int(len(lp) * k))].mean())


def zlib_score(avg_nll: float, text: str) -> float:
    """Mean token NLL over the zlib-compressed length of the text (Carlini et al. 2021)."""
    return float(avg_nll) / len(zlib.compress(text.encode("utf-8")))


def mia_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """ROC AUC of telling non-members (label 1) from members (label 0) by score: 1 when
    every forget item scores lower than every held-out one, 0.5 at chance."""
    m, h = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    if not len(m) or not len(h):
        return math.nan
    ranks = stats.rankdata(np.concatenate([m, h]))
    u = ranks[len(m) :].sum() - len(h) * (len(h) + 1) / 2
    return float(u / (len(m) * len(h)))


def frontier_area(utility: np.ndarray, log_fq: np.ndarray, u_max: float, grid: int = 101) -> float:
    """Mean over u in [0, u_max] of the best log10 forget quality a trajectory reaches at
    utility >= u (its upper-left frontier); undefined levels count the trajectory's worst
    point."""
    utility, log_fq = np.asarray(utility, float), np.asarray(log_fq, float)
    us = np.linspace(0, u_max, grid)
    floor = float(log_fq.min())
    best = [float(log_fq[utility >= u].max()) if np.any(utility >= u) else floor for u in us]
    return float(np.mean(best))
