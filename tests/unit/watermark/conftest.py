"""A next-token model with known probabilities for the watermark tests: a random bigram
table (rows Dirichlet-distributed, so entropies vary)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


class Bigram:
    def __init__(self, vocab: int, seed: int = 0, concentration: float = 0.5):
        rng = np.random.default_rng(seed)
        self.probs = rng.dirichlet(np.full(vocab, concentration), size=vocab)
        self.logp = torch.from_numpy(np.log(self.probs))
        self.vocab = vocab

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logp[ids[:, -1]]


@pytest.fixture
def bigram():
    return Bigram(64)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small tensors: one torch thread (two spin against a busy core, ~10× slower)."""
    yield
