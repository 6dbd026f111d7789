"""How many dimensions a representation (or a weight update) really uses.

Three scalar summaries of a matrix's spectrum, each answering "how many directions
carry the mass" with a different weighting:

* effective rank (Roy & Vetterli 2007, "The effective rank: a measure of effective
  dimensionality", EUSIPCO): exp of the Shannon entropy of the singular values
  normalised to sum to 1. Equals k for k equal non-zero singular values.
* participation ratio ((Σλ)² / Σλ², λ the eigenvalues of the covariance; Gao et al.
  2017, Litwin-Kumar et al. 2017): the same idea on *variances* (λ = σ²/(n-1)), so it
  weights the top directions more heavily. ≈ d for isotropic d-dimensional data.
* stable rank (‖M‖²_F / ‖M‖²_2; Rudelson & Vershynin 2007): a lower bound on rank that
  is robust to tiny singular values. Always <= rank.

Functions take a matrix M (n, d). Weight matrices and weight updates are used as they
are; activations are usually centred first (``center=True``, the default of
:func:`activation_spectra`) so that a shared mean offset does not count as a direction.
A zero matrix has all three summaries equal to 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fmlab.measure._arrays import ArrayLike, as_float64


@dataclass(frozen=True)
class SpectralSummary:
    """Spectral summaries of one matrix; ``shape`` is the matrix's (rows, cols)."""

    effective_rank: float
    participation_ratio: float
    stable_rank: float
    rank: int  # numerical rank (singular values above the LAPACK-style tolerance)
    top_singular_value: float
    shape: tuple[int, int]


def singular_values(M: ArrayLike, *, center: bool = False) -> np.ndarray:
    """Singular values of M (n, d) in descending order (float64); centre columns if asked."""
    A = as_float64(M, "M", ndim=2)
    if center:
        A = A - A.mean(axis=0, keepdims=True)
    if A.size == 0:
        return np.zeros(0)
    return np.linalg.svd(A, compute_uv=False)  # (min(n, d),)


def _effective_rank(s: np.ndarray) -> float:
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def _participation_ratio(s: np.ndarray) -> float:
    lam = s**2  # ∝ covariance eigenvalues; the 1/(n-1) cancels in the ratio
    denom = np.sum(lam**2)
    return float(lam.sum() ** 2 / denom) if denom > 0 else 0.0


def _stable_rank(s: np.ndarray) -> float:
    return float(np.sum(s**2) / s[0] ** 2) if s.size and s[0] > 0 else 0.0


def _numerical_rank(s: np.ndarray, shape: tuple[int, int]) -> int:
    if not s.size or s[0] == 0:
        return 0
    tol = s[0] * max(shape) * np.finfo(np.float64).eps  # numpy.linalg.matrix_rank's rule
    return int(np.sum(s > tol))


def effective_rank(M: ArrayLike, *, center: bool = False) -> float:
    """Roy & Vetterli (2007) effective rank: exp(H(σ / Σσ)), in [1, min(n, d)]."""
    return _effective_rank(singular_values(M, center=center))


def participation_ratio(M: ArrayLike, *, center: bool = False) -> float:
    """(Σλ)² / Σλ² over the eigenvalues λ of MᵀM (the covariance when ``center``)."""
    return _participation_ratio(singular_values(M, center=center))


def stable_rank(M: ArrayLike, *, center: bool = False) -> float:
    """‖M‖²_F / ‖M‖²_2 = Σσ² / σ_max²."""
    return _stable_rank(singular_values(M, center=center))


def spectral_summary(M: ArrayLike, *, center: bool = False) -> SpectralSummary:
    """All spectral summaries of M (n, d) from a single SVD."""
    A = as_float64(M, "M", ndim=2)
    s = singular_values(A, center=center)
    shape = (int(A.shape[0]), int(A.shape[1]))
    return SpectralSummary(
        effective_rank=_effective_rank(s),
        participation_ratio=_participation_ratio(s),
        stable_rank=_stable_rank(s),
        rank=_numerical_rank(s, shape),
        top_singular_value=float(s[0]) if s.size else 0.0,
        shape=shape,
    )


def activation_spectra(acts: ArrayLike, *, center: bool = True) -> SpectralSummary:
    """Spectral summary of activations (n, d): examples in rows, centred by default.

    Flatten (B, T, D) to (B·T, D) first if tokens are the examples.
    """
    return spectral_summary(acts, center=center)


def weight_update_spectra(
    sd_a: Mapping[str, ArrayLike], sd_b: Mapping[str, ArrayLike]
) -> dict[str, SpectralSummary]:
    """Spectral summary of ΔW = W_b − W_a for every 2-D weight present in both state dicts.

    Why: fine-tuning updates are often far lower-rank than the weights themselves (the
    premise of LoRA, Hu et al. 2022); this measures it per matrix. Keys follow
    ``sd_a``'s order; 1-D parameters (biases, norms) and keys missing from ``sd_b`` are
    skipped. A parameter that did not change maps to an all-zero summary. Raises if a
    shared key changed shape or if no 2-D weight is shared.
    """
    out: dict[str, SpectralSummary] = {}
    for name, wa in sd_a.items():
        if name not in sd_b:
            continue
        A = as_float64(wa, name)
        if A.ndim != 2:
            continue
        B = as_float64(sd_b[name], name)
        if B.shape != A.shape:
            raise ValueError(f"{name}: shape {tuple(A.shape)} in sd_a but {tuple(B.shape)} in sd_b")
        out[name] = spectral_summary(B - A)
    if not out:
        raise ValueError("the two state dicts share no 2-D weight")
    return out
