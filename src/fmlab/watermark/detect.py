"""What every detector shares: which positions are scored, the null distributions of the
scores, and the result of one detection.

Scored positions. A token is scored when it lies after the prompt (``start``) and has its
full context (``context_width`` tokens before it, which may belong to the prompt). With
``dedupe`` a repeated n-gram — the same context *and* token, or for SynthID the same
context — counts once, at its first scored occurrence (Kirchenbauer et al. 2023 §4 and
Fernandez et al. 2023, "Three Bricks to Consolidate Watermarks for LLMs": a repeated
n-gram repeats its colour, so counting it again breaks the independence the test
assumes). Only scored positions are compared, so what the prompt holds never changes the
result: detection is invariant to excluding the prompt.

Null distributions, exact. Under H0 (text independent of the key) the scored tokens of
distinct n-grams are independent: KGW's green count is Binomial(n, γ) with γ = |G|/|V|
exactly, the Gumbel score ``Σ -log(1 - r)`` is Gamma(n, 1), SynthID's sum of g-values is
Binomial(n·depth, q) with q the mean of its sampling table. The z-score is the paper's
normal approximation; ``p_value`` is the exact tail, ``p_normal`` the z-score's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

Z_PAPER = 4.0  # Kirchenbauer et al. 2023 reject H0 at z > 4: one-sided normal tail 3.2e-5
FPR_PAPER = float(stats.norm.sf(Z_PAPER))
MAX_UNIFORM_SCORE = 53 * math.log(2)  # -log(1 - u) for the largest u the PRF gives


def scored_mask(
    ids: np.ndarray,
    start: int | np.ndarray,
    context_width: int,
    *,
    dedupe: bool,
    include_token: bool = True,
    lengths: np.ndarray | None = None,
) -> np.ndarray:
    """(B, L) bool: the positions a detector scores (see the module docstring).

    ``start`` is the first position that may be scored (the prompt length), one for all
    rows or one per row; ``lengths`` (B,) ends each row early (padding after it);
    ``include_token=False`` dedupes on the context alone (SynthID's rule).
    """
    ids = np.asarray(ids)
    B, L = ids.shape
    pos = np.arange(L)[None, :]
    first = np.maximum(np.broadcast_to(np.asarray(start), (B,)), context_width)[:, None]
    mask = pos >= first
    if lengths is not None:
        mask &= pos < np.asarray(lengths)[:, None]
    if not dedupe:
        return mask
    out = mask.copy()
    width = context_width + (1 if include_token else 0)
    for b in range(B):
        where = np.nonzero(mask[b])[0]
        if len(where) < 2:
            continue
        grams = np.stack([ids[b, where - context_width + j] for j in range(width)], axis=1)
        _, first_seen = np.unique(grams, axis=0, return_index=True)
        keep = np.zeros(len(where), dtype=bool)
        keep[first_seen] = True
        out[b, where] = keep
    return out


def binomial_test(hits: Any, n: Any, p0: float) -> dict[str, np.ndarray]:
    """One-proportion z-test ``z = (hits - p0·n) / sqrt(n·p0·(1-p0))`` (Kirchenbauer et
    al. 2023, eq. 3) with the exact binomial tail ``P(X >= hits)``; n = 0 gives z = NaN,
    p = 1."""
    hits, n = np.asarray(hits, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (hits - p0 * n) / np.sqrt(n * p0 * (1 - p0))
    p_exact = np.where(n > 0, stats.binom.sf(hits - 1, n, p0), 1.0)
    p_normal = np.where(n > 0, stats.norm.sf(z), 1.0)
    return {"z": z, "p_value": p_exact, "p_normal": p_normal}


def gamma_test(score: Any, n: Any) -> dict[str, np.ndarray]:
    """The Gumbel score ``S = Σ -log(1 - r)`` against Gamma(n, 1): ``z = (S - n)/√n`` and
    the exact tail ``P(Gamma(n, 1) >= S)`` (Fernandez et al. 2023, eq. 4)."""
    score, n = np.asarray(score, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (score - n) / np.sqrt(n)
        p_exact = np.where(n > 0, special.gammaincc(np.maximum(n, 1), score), 1.0)
    p_normal = np.where(n > 0, stats.norm.sf(z), 1.0)
    return {"z": z, "p_value": p_exact, "p_normal": p_normal}


def min_tokens_binomial(p0: float, fpr: float, per_token: int = 1) -> int:
    """Fewest scored tokens that could reach ``fpr`` at all: even when every one of their
    ``per_token`` Bernoulli(p0) trials hits, ``P(X >= n) = p0^n`` must be <= ``fpr``."""
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must lie in (0, 1), got {fpr}")
    return max(1, math.ceil(math.log(fpr) / (per_token * math.log(p0)) - 1e-12))


def min_tokens_gamma(fpr: float) -> int:
    """Fewest tokens for the Gumbel score to reach ``fpr``: one maximal token already
    scores 53·ln 2 ≈ 36.7, whose Gamma(1, 1) tail is 1.1e-16."""
    n = 1
    while special.gammaincc(n, n * MAX_UNIFORM_SCORE) > fpr:
        n += 1
    return n


@dataclass(frozen=True)
class Detection:
    """One text's detection. ``statistic`` is the green count (KGW), the score
    ``Σ -log(1 - r)`` (Gumbel) or the sum of g-values (SynthID); ``expected`` its mean
    without a watermark; ``per_token`` one entry per position of the ids scored: None
    where the token was not scored (prompt, missing context, repeated n-gram), else its
    contribution (1/0 for green/red, ``-log(1 - r)``, mean g)."""

    scheme: str
    n_tokens: int
    n_scored: int
    statistic: float
    expected: float
    z: float
    p_value: float
    p_normal: float
    min_tokens: int
    fpr: float
    per_token: list[float | None] = field(repr=False)

    @property
    def detected(self) -> bool:
        return self.n_scored >= self.min_tokens and self.p_value <= self.fpr

    @property
    def too_short(self) -> bool:
        return self.n_scored < self.min_tokens

    def verdict(self) -> str:
        """One plain sentence about what the numbers say."""
        if self.too_short:
            return (
                f"too few tokens to decide: {self.n_scored} scored, but at least "
                f"{self.min_tokens} are needed before any text could reach the requested "
                f"false-positive rate {self.fpr:.2g} (exact test)"
            )
        if self.detected:
            return (
                f"watermarked: z = {self.z:.2f}, p = {self.p_value:.3g} <= {self.fpr:.2g} "
                f"over {self.n_scored} scored tokens"
            )
        if abs(self.z) < 2:
            return (
                f"no evidence of this watermark (z = {self.z:.2f} ≈ 0, p = {self.p_value:.2g}): "
                "the text is not watermarked, or it was watermarked with another key, scheme "
                "or settings"
            )
        return (
            f"not detected at the requested rate: z = {self.z:.2f}, p = {self.p_value:.3g} > "
            f"{self.fpr:.2g} — weak evidence; a longer text would say more"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(detected=self.detected, too_short=self.too_short, verdict=self.verdict())
        return out
