"""Nanda et al. 2023's progress measures for a network doing modular addition
("Progress measures for grokking via mechanistic interpretability", arXiv 2301.05217).

The inputs are tables over all p² pairs ``(a, b)`` in row-major order (row ``a·p + b``):
the logits at the answer position, ``(p², V)``, and the MLP neurons' activations there,
``(p², N)``. The definitions follow the authors' code (the notebook of
github.com/mechanistic-interpretability-grokking/progress-measures-paper):

* **neuron frequencies** — centre each neuron's activations over the p² inputs, take
  their 2-D Fourier transform over (a, b) on the orthonormal real basis of Z_p, and give
  each neuron the frequency k whose 8 components (cos/sin of k in a alone, in b alone,
  and the 4 products) hold the largest share of its squared norm;
* **key frequencies** — the distinct best frequencies of all neurons, as the authors'
  code computes them from the final model (``np.unique`` of the best frequencies; a
  neuron that never varies has none). Their threshold 0.85 only marks which neurons are
  cleanly in a frequency's cluster (``NeuronFrequencies.key_frequencies(0.85)`` gives
  the frequencies of those);
* **restricted logits** — the logits projected, for every output c, onto the 2·|K|
  directions cos(w_k(a+b)) and sin(w_k(a+b)) over the p² inputs (w_k = 2πk/p, k in the
  key frequencies K), plus the mean logit over inputs (the authors' bias correction);
  the **restricted loss** is their cross-entropy over all p² pairs;
* **excluded logits** — the logits with those directions removed; the **excluded
  loss** is their cross-entropy on the training pairs;
* **Gini coefficient** (Hurley & Rickard 2009) of the norms of a weight's Fourier
  components, and the share of its squared norm in the key frequencies.

Tensors in, numbers out: nothing here knows a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fmlab.measure.fourier import fourier_basis

NEURON_CLUSTER_SHARE = 0.85  # Nanda et al.'s threshold for a neuron to belong to a frequency


def frequency_rows(p: int, k: int) -> list[int]:
    """Rows of :func:`fourier_basis` that hold frequency k (cos_k, and sin_k unless Nyquist)."""
    return [2 * k - 1] if 2 * k == p else [2 * k - 1, 2 * k]


def fourier_2d(table: Tensor, p: int) -> Tensor:
    """2-D Fourier coefficients (p, p, …) of a (p², …) table over (a, b), row a·p + b."""
    basis = fourier_basis(p).to(table.device)
    grid = table.double().reshape(p, p, -1)
    out = torch.einsum("xyz,fx,gy->fgz", grid, basis, basis)
    return out.reshape(p, p, *table.shape[1:])


@dataclass(frozen=True)
class NeuronFrequencies:
    """Each neuron's best frequency (0 for a neuron that never varies) and the share of
    its centred activations' squared norm that frequency's 8 components hold."""

    frequency: tuple[int, ...]
    share: tuple[float, ...]

    def key_frequencies(self, min_share: float = 0.0) -> list[int]:
        """Distinct best frequencies of the neurons with at least ``min_share``."""
        return sorted(
            {f for f, s in zip(self.frequency, self.share, strict=True) if s >= min_share and f}
        )


def neuron_frequencies(acts: Tensor, p: int) -> NeuronFrequencies:
    """Best frequency of each neuron from its activations ``acts`` (p², N) over all pairs."""
    centred = acts.double() - acts.double().mean(0, keepdim=True)
    coeffs = fourier_2d(centred, p).pow(2)  # (p, p, N)
    total = coeffs.sum((0, 1))  # (N,)
    shares = []
    for k in range(1, p // 2 + 1):
        rows = frequency_rows(p, k)
        idx = torch.tensor([0, *rows])
        block = coeffs[idx][:, idx].sum((0, 1))  # linear in a, linear in b, products
        shares.append(block)
    share = torch.stack(shares) / total.clamp_min(torch.finfo(torch.float64).tiny)  # (K, N)
    best = share.max(0)
    frequency = torch.where(total > 0, best.indices + 1, torch.zeros_like(best.indices))
    value = torch.where(total > 0, best.values, torch.zeros_like(best.values))
    return NeuronFrequencies(tuple(frequency.tolist()), tuple(value.tolist()))


def sum_directions(p: int, freqs: Sequence[int]) -> Tensor:
    """Unit vectors cos(w_k(a+b)), sin(w_k(a+b)) over the p² pairs, for each k: (2|K|, p²).

    They equal the authors' (cos_a⊗cos_b − sin_a⊗sin_b)/√2 and (sin_a⊗cos_b + cos_a⊗sin_b)/√2
    on the normalised 1-D basis, and are orthonormal for distinct k (p odd)."""
    a = torch.arange(p, dtype=torch.float64)
    s = (a[:, None] + a[None, :]).flatten()  # a + b, row a·p + b
    rows = []
    for k in freqs:
        w = 2 * math.pi * k / p
        rows += [torch.cos(w * s), torch.sin(w * s)]
    if not rows:
        return torch.zeros(0, p * p, dtype=torch.float64)
    d = torch.stack(rows)
    return d / d.norm(dim=1, keepdim=True)


@dataclass(frozen=True)
class SumComponents:
    """The logits' components along every cos/sin(w_k(a+b)) (k = 1 … ⌊p/2⌋) and their
    mean over inputs: enough to rebuild the restricted logits for any key set later."""

    coeffs: Tensor  # (⌊p/2⌋, 2, V): coefficient of each unit direction, per output
    mean: Tensor  # (V,): mean logit over the p² inputs

    @property
    def p(self) -> int:
        return 2 * self.coeffs.shape[0] + 1


def sum_components(logits: Tensor, p: int) -> SumComponents:
    """Components of a (p², V) logit table along all cos/sin(w_k(a+b)) directions."""
    d = sum_directions(p, range(1, p // 2 + 1)).to(logits.device)  # (2K, p²)
    c = d @ logits.double()  # (2K, V)
    return SumComponents(c.view(p // 2, 2, -1), logits.double().mean(0))


def _projection(
    components: SumComponents, freqs: Sequence[int], rows: Tensor | None = None
) -> Tensor:
    """Σ_k over ``freqs`` of the logits' projection on cos/sin(w_k(a+b)), at ``rows``."""
    p = components.p
    d = sum_directions(p, freqs).to(components.coeffs.device)  # (2|K|, p²)
    if rows is not None:
        d = d[:, rows]
    if not len(freqs):
        return torch.zeros(d.shape[1], components.coeffs.shape[-1], dtype=torch.float64)
    c = components.coeffs[torch.tensor(freqs) - 1].reshape(2 * len(freqs), -1)  # (2|K|, V)
    return d.T @ c


def restricted_logits(components: SumComponents, freqs: Sequence[int]) -> Tensor:
    """The logits kept only along the key directions, plus their mean over inputs (p², V)."""
    return _projection(components, freqs) + components.mean


def excluded_logits(
    logits: Tensor, components: SumComponents, freqs: Sequence[int], rows: Tensor
) -> Tensor:
    """``logits`` (the table's ``rows``) with the key directions removed."""
    return logits.double() - _projection(components, freqs, rows)


def cross_entropy(logits: Tensor, labels: Tensor) -> float:
    """Mean cross-entropy in float64 (tiny losses underflow in float32)."""
    return F.cross_entropy(logits.double(), labels).item()


def sum_labels(p: int) -> Tensor:
    """(a + b) mod p for every pair, row a·p + b."""
    a = torch.arange(p)
    return ((a[:, None] + a[None, :]) % p).flatten()


def restricted_loss(components: SumComponents, freqs: Sequence[int]) -> float:
    """Cross-entropy of the restricted logits on all p² pairs of modular addition."""
    p = components.p
    return cross_entropy(restricted_logits(components, freqs)[:, :p], sum_labels(p))


def excluded_loss(
    train_logits: Tensor, components: SumComponents, freqs: Sequence[int], rows: Tensor
) -> float:
    """Cross-entropy of the excluded logits on the training pairs (``rows`` of the table)."""
    p = components.p
    logits = excluded_logits(train_logits, components, freqs, rows)[:, :p]
    return cross_entropy(logits, sum_labels(p)[rows])


def gini(values: Tensor) -> float:
    """Gini coefficient of non-negative values (Hurley & Rickard 2009): 0 when all are
    equal, 1 − 1/n when one holds everything."""
    x = values.double().flatten().sort().values
    n, total = len(x), x.sum()
    if n == 0 or total <= 0:
        return 0.0
    k = torch.arange(1, n + 1, dtype=torch.float64)
    return float(1 - 2 * ((x / total) * (n - k + 0.5) / n).sum())


def component_norms(weights: Tensor, p: int) -> Tensor:
    """Norms of the p Fourier components (constant, cos_1, sin_1, …) of a weight whose
    first p rows are indexed by the residue: (p,)."""
    return (fourier_basis(p).to(weights.device) @ weights[:p].double()).norm(dim=1)


def key_share(norms: Tensor, freqs: Sequence[int]) -> float:
    """Share of the non-constant squared norm in the key frequencies' components."""
    p = len(norms)
    energy = norms.double() ** 2
    total = energy[1:].sum()
    if total <= 0:
        return 0.0
    rows = [r for k in freqs for r in frequency_rows(p, k)]
    return float(energy[rows].sum() / total)
