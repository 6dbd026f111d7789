"""Spectral summaries against closed forms (Roy & Vetterli 2007; participation ratio)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from fmlab.measure import (
    activation_spectra,
    effective_rank,
    participation_ratio,
    spectral_summary,
    stable_rank,
    weight_update_spectra,
)


def _with_singular_values(s: np.ndarray, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    U = ortho_group.rvs(shape[0], random_state=seed)[:, : len(s)]
    V = ortho_group.rvs(shape[1], random_state=seed + 1)[:, : len(s)]
    return (U * s) @ V.T  # (m, n) with exactly the singular values s


def test_k_equal_singular_values_give_k_for_every_summary():
    M = _with_singular_values(np.full(7, 2.5), (40, 30))
    got = spectral_summary(M)
    assert got.effective_rank == pytest.approx(7, abs=1e-8)
    assert got.participation_ratio == pytest.approx(7, abs=1e-8)
    assert got.stable_rank == pytest.approx(7, abs=1e-8)
    assert got.rank == 7
    assert got.top_singular_value == pytest.approx(2.5)
    assert got.shape == (40, 30)


def test_effective_rank_matches_hand_computation():
    # σ = (3, 1): p = (3/4, 1/4), H = −(¾ ln ¾ + ¼ ln ¼) = 0.562335, erank = e^H = 1.754765.
    M = _with_singular_values(np.array([3.0, 1.0]), (5, 4), seed=3)
    assert effective_rank(M) == pytest.approx(1.754765, abs=1e-6)
    # stable rank (9 + 1)/9; participation ratio (9 + 1)² / (81 + 1)
    assert stable_rank(M) == pytest.approx(10 / 9)
    assert participation_ratio(M) == pytest.approx(100 / 82)


def test_participation_ratio_of_isotropic_data_is_about_d():
    # Sample-covariance eigenvalues (Marchenko–Pastur, γ = d/n) give PR ≈ d / (1 + γ).
    n, d = 20000, 50
    X = np.random.default_rng(4).normal(size=(n, d))
    pr = activation_spectra(X).participation_ratio
    assert pr == pytest.approx(d / (1 + d / n), rel=0.01)
    assert pr > 0.97 * d


def test_centering_removes_a_shared_offset():
    X = np.random.default_rng(5).normal(size=(2000, 20)) + 50.0
    assert effective_rank(X) < 2.5  # the mean direction dominates the raw matrix
    assert activation_spectra(X).effective_rank > 19  # ≈ 20 once centred


def test_rank_r_weight_update_has_effective_rank_about_r():
    rng = np.random.default_rng(6)
    r = 4
    sd_a = {
        "layer.weight": torch.tensor(rng.normal(size=(256, 128))),
        "layer.bias": torch.zeros(256),
        "frozen.weight": torch.ones(8, 8),
        "only_in_a.weight": torch.ones(3, 3),
    }
    delta = rng.normal(size=(256, r)) @ rng.normal(size=(r, 128))  # rank-r ΔW
    sd_b = {
        "layer.weight": sd_a["layer.weight"] + torch.tensor(delta),
        "layer.bias": torch.ones(256),
        "frozen.weight": torch.ones(8, 8),
    }
    out = weight_update_spectra(sd_a, sd_b)
    assert list(out) == ["layer.weight", "frozen.weight"]  # 1-D and unshared keys skipped
    upd = out["layer.weight"]
    assert upd.rank == r
    # Unequal singular values of a random rank-r product pull it a little below r.
    assert 0.9 * r < upd.effective_rank <= r + 1e-9
    assert 1 <= upd.stable_rank <= r
    assert out["frozen.weight"].effective_rank == 0.0  # unchanged: all-zero summary
    assert out["frozen.weight"].rank == 0


def test_weight_update_errors():
    with pytest.raises(ValueError, match="shape"):
        weight_update_spectra({"w": np.ones((2, 3))}, {"w": np.ones((3, 2))})
    with pytest.raises(ValueError, match="no 2-D weight"):
        weight_update_spectra({"b": np.ones(3)}, {"b": np.ones(3)})
