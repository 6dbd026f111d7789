"""Exact quantities of a watermark on a next-token distribution: spike entropy and the
green-fraction bound of Kirchenbauer et al. 2023 (Definition 4.1, Theorem 4.2), the exact
KL of KGW's biased distribution, and goodness-of-fit of sampled next tokens.

Theorem 4.2 (per token). With ``α = e^δ`` and a green list of ``γN`` tokens drawn
uniformly at random, a token sampled from the biased distribution is green with
probability at least

    γα / (1 + (α - 1)γ) · S(p, z),   z = (1 - γ)(α - 1) / (1 + (α - 1)γ),

where ``S(p, z) = Σ_k p_k / (1 + z p_k)`` is the spike entropy. At a point mass
``S = 1/(1+z)`` and the bound is exactly γ; for the uniform distribution it tends to
``γα/(1 + (α-1)γ)``, the green probability there.

KL. KGW's biased distribution is ``p'_k = p_k e^{δ m_k} / (1 + (e^δ - 1) P(G))`` for the
green mask ``m``, so ``KL(p' ‖ p) = δ P'(G) - log(1 + (e^δ - 1) P(G))`` exactly.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def spike_modulus(gamma: float, delta: float) -> float:
    """``z = (1-γ)(α-1)/(1+(α-1)γ)`` with ``α = e^δ``."""
    a = math.exp(delta)
    return (1 - gamma) * (a - 1) / (1 + (a - 1) * gamma)


def spike_entropy(p: np.ndarray, z: float) -> np.ndarray:
    """``S(p, z) = Σ_k p_k / (1 + z·p_k)`` along the last axis (Definition 4.1)."""
    p = np.asarray(p, dtype=float)
    return (p / (1 + z * p)).sum(-1)


def green_bound(p: np.ndarray, gamma: float, delta: float) -> np.ndarray:
    """Theorem 4.2's lower bound on the probability that the next token is green."""
    a = math.exp(delta)
    return gamma * a / (1 + (a - 1) * gamma) * spike_entropy(p, spike_modulus(gamma, delta))


def kgw_kl(p: np.ndarray, green: np.ndarray, delta: float) -> np.ndarray:
    """Exact ``KL(p' ‖ p)`` in nats of KGW's biased ``p'`` (green mask ``green``)."""
    p = np.asarray(p, dtype=float)
    pg = (p * green).sum(-1)
    norm = 1 + math.expm1(delta) * pg
    return delta * math.exp(delta) * pg / norm - np.log(norm)


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``KL(p ‖ q)`` in nats along the last axis (``0 log 0 = 0``)."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(-1)


def chi_square_gof(counts: np.ndarray, probs: np.ndarray, min_expected: float = 5.0) -> dict:
    """Pearson's goodness-of-fit of next-token counts to known probabilities, pooled over
    contexts: per row (a context), categories expected fewer than ``min_expected`` times
    are merged into one (the usual validity rule for the χ² approximation; dropped, and
    the rest compared conditionally on its total, if still below), and the statistics and
    degrees of freedom of the rows add up (independent rows). Returns ``chi2``, ``df``,
    ``p`` and ``kl_corrected``: the mean over rows of ``(χ² - df) / (2K)`` for ``K`` draws
    — to second order ``KL(p̂ ‖ p) ≈ χ²/(2K)`` and ``E[χ²] = df`` when the draws follow
    ``p``, so it estimates the divergence without the plug-in estimator's upward bias
    (≈ 0 for a distortion-free sampler)."""
    counts, probs = np.asarray(counts, dtype=float), np.asarray(probs, dtype=float)
    chi2, df, kls = 0.0, 0, []
    for c, p in zip(counts, probs, strict=True):
        K = c.sum()
        expected = K * p
        big = expected >= min_expected
        obs = list(c[big])
        exp = list(expected[big])
        rest_e, rest_o = expected[~big].sum(), c[~big].sum()
        if rest_e >= min_expected:
            obs.append(rest_o)
            exp.append(rest_e)
        elif rest_o > 0 and rest_e == 0:  # a token the model gives probability 0
            return {"chi2": math.inf, "df": 1, "p": 0.0, "kl_corrected": math.inf}
        obs_a, exp_a = np.asarray(obs), np.asarray(exp)
        if len(obs_a) >= 2:
            scale = obs_a.sum() / exp_a.sum()  # categories dropped: compare within the rest
            row = float(((obs_a - scale * exp_a) ** 2 / (scale * exp_a)).sum())
            chi2 += row
            df += len(obs_a) - 1
            kls.append((row - (len(obs_a) - 1)) / (2 * obs_a.sum()))
    p_value = float(stats.chi2.sf(chi2, df)) if df else 1.0
    return {"chi2": chi2, "df": df, "p": p_value, "kl_corrected": float(np.mean(kls or [0.0]))}
