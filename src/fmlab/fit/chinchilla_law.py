"""The Chinchilla law ``L(N, D) = E + A/N^α + B/D^β``: its parameters, their log-space
coordinates, the compute-optimal allocation, and Hoffmann et al.'s grid of starts.

Fitting it is :class:`fmlab.fit.ChinchillaFit` (``fmlab.fit.chinchilla``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["HOFFMANN_GRID", "PARAM_NAMES", "ChinchillaParams", "param_columns"]

PARAM_NAMES = ("a", "b", "e", "alpha", "beta")  # order of theta: log A, log B, log E, α, β

#: Hoffmann et al.'s initialization grid (4,500 starts), as used by Besiroglu et al.
HOFFMANN_GRID: Mapping[str, tuple[float, ...]] = {
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}


@dataclass(frozen=True)
class ChinchillaParams:
    """``L(N, D) = E + A / N**alpha + B / D**beta``."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    @classmethod
    def from_theta(cls, theta: Sequence[float]) -> ChinchillaParams:
        a, b, e, alpha, beta = (float(t) for t in theta)
        return cls(math.exp(e), math.exp(a), math.exp(b), alpha, beta)

    @property
    def theta(self) -> np.ndarray:
        """``(log A, log B, log E, α, β)``."""
        return np.array([np.log(self.A), np.log(self.B), np.log(self.E), self.alpha, self.beta])

    def predict(self, N: Any, D: Any) -> np.ndarray:
        N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        return self.E + self.A * N**-self.alpha + self.B * D**-self.beta

    @property
    def a(self) -> float:
        """Exponent of ``N_opt ∝ C^a``: ``β / (α + β)``."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of ``D_opt ∝ C^b``: ``α / (α + β)``."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """``(αA / (βB))^(1/(α+β))`` (Hoffmann et al. eq. 4); NaN unless α, β > 0."""
        if self.alpha <= 0 or self.beta <= 0:
            return float("nan")
        return (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))

    def compute_optimal(self, C: Any) -> tuple[np.ndarray, np.ndarray]:
        """``N_opt = G (C/6)^a``, ``D_opt = G^-1 (C/6)^b`` for FLOP budgets ``C ≈ 6 N D``."""
        c6 = np.asarray(C, dtype=float) / 6
        return self.G * c6**self.a, c6**self.b / self.G


def param_columns(theta: np.ndarray) -> dict[str, np.ndarray]:
    """:class:`ChinchillaParams`' fields and ``a, b, G`` for rows of theta (S, 5), vectorised."""
    A, B, E = np.exp(theta[:, 0]), np.exp(theta[:, 1]), np.exp(theta[:, 2])
    alpha, beta = theta[:, 3], theta[:, 4]
    with np.errstate(all="ignore"):
        G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    G = np.where((alpha > 0) & (beta > 0), G, np.nan)
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    return {"E": E, "A": A, "B": B, "alpha": alpha, "beta": beta, "a": a, "b": b, "G": G}
