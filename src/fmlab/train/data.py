"""Batches from in-memory tensors: full batch, or seeded shuffled minibatches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


def iterate_batches(
    tensors: tuple[Tensor, ...],
    batch_size: int | None,
    generator: torch.Generator,
) -> Iterator[tuple[Tensor, ...]]:
    """Endless batches. ``None`` (or a size ≥ N) yields the whole set every step;
    otherwise epochs of a seeded permutation, dropping the ragged last batch."""
    n = len(tensors[0])
    if batch_size is None or batch_size >= n:
        while True:
            yield tensors
    per_epoch = n // batch_size
    while True:
        order = torch.randperm(n, generator=generator)
        for i in range(per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            yield tuple(t[idx] for t in tensors)
