"""Fourier progress measures for modular arithmetic (Nanda et al. 2023, "Progress
measures for grokking via mechanistic interpretability").

A network that has grokked modular addition represents each input token a by
cos(2πka/p) and sin(2πka/p) for a handful of *key frequencies* k: its embedding
matrix is sparse in the Fourier basis of Z_p. At initialisation the energy is spread
over all (p−1)/2 frequencies. These functions measure how concentrated it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def fourier_basis(p: int) -> Tensor:
    """Orthonormal real Fourier basis of Z_p, rows: constant, cos_1, sin_1, cos_2, … (p, p).

    For even p the last row is the Nyquist cosine (−1)^a, which has no sine partner.
    """
    a = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * a / p))
        if 2 * k != p:
            rows.append(torch.sin(2 * math.pi * k * a / p))
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True)


@dataclass(frozen=True)
class FourierSpectrum:
    """Energy of an embedding per frequency k = 1 … ⌊p/2⌋ (the constant excluded)."""

    energy: tuple[float, ...]  # energy[k-1] = ‖cos_k component‖² + ‖sin_k component‖²
    constant: float  # energy of the constant (k = 0) component

    @property
    def fractions(self) -> list[float]:
        total = sum(self.energy)
        return [e / total for e in self.energy] if total > 0 else [0.0] * len(self.energy)

    def top_k_fraction(self, k: int) -> float:
        """Share of the (non-constant) energy in the k strongest frequencies."""
        return sum(sorted(self.fractions, reverse=True)[:k])

    @property
    def effective_frequencies(self) -> float:
        """Participation ratio (Σe)²/Σe²: ≈ the number of frequencies in use
        (⌊p/2⌋ for energy spread evenly, 1 for a single frequency)."""
        total = sum(self.energy)
        squares = sum(e * e for e in self.energy)
        return total * total / squares if squares > 0 else 0.0

    def key_frequencies(self, k: int) -> list[int]:
        order = sorted(range(len(self.energy)), key=lambda i: -self.energy[i])
        return sorted(i + 1 for i in order[:k])


def embedding_spectrum(W_E: Tensor, p: int) -> FourierSpectrum:
    """Spectrum of the embeddings of tokens 0 … p−1 (rows of ``W_E``, shape (≥p, D))."""
    coeffs = fourier_basis(p) @ W_E[:p].detach().to("cpu", torch.float64)  # (p, D)
    row_energy = (coeffs**2).sum(dim=1)  # (p,)
    energy = [float(row_energy[1:3].sum())]  # rows 1, 2: cos_1, sin_1
    for k in range(2, p // 2 + 1):
        start = 2 * k - 1
        stop = start + (1 if 2 * k == p else 2)
        energy.append(float(row_energy[start:stop].sum()))
    return FourierSpectrum(tuple(energy), float(row_energy[0]))
