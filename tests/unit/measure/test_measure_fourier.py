import math

import pytest
import torch

from fmlab.measure.fourier import embedding_spectrum, fourier_basis


@pytest.mark.parametrize("p", [2, 7, 12, 59])
def test_basis_is_orthonormal(p):
    F = fourier_basis(p)
    torch.testing.assert_close(F @ F.T, torch.eye(p, dtype=torch.float64))


def test_a_single_frequency_embedding_has_all_its_energy_there():
    p, k = 13, 4
    a = torch.arange(p, dtype=torch.float64)
    W = torch.stack([torch.cos(2 * math.pi * k * a / p), torch.sin(2 * math.pi * k * a / p)], 1)
    s = embedding_spectrum(W, p)
    assert len(s.energy) == 6
    assert s.fractions[k - 1] == pytest.approx(1.0)
    assert s.top_k_fraction(1) == pytest.approx(1.0)
    assert s.effective_frequencies == pytest.approx(1.0)
    assert s.key_frequencies(1) == [k]
    assert s.constant == pytest.approx(0.0, abs=1e-20)


def test_even_spread_uses_every_frequency_and_energy_is_conserved():
    p = 11
    W = fourier_basis(p)[1:].T  # every non-constant basis vector once, (p, p-1)
    s = embedding_spectrum(W, p)
    assert s.effective_frequencies == pytest.approx(5.0)
    assert s.top_k_fraction(2) == pytest.approx(0.4)
    W = torch.randn(p, 9, dtype=torch.float64)
    s = embedding_spectrum(W, p)
    assert sum(s.energy) + s.constant == pytest.approx(float((W**2).sum()))
