"""CKA against independent implementations and its defining invariances (Kornblith 2019)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.stats import ortho_group

from fmlab.measure import (
    MinibatchCKA,
    StreamingLinearCKA,
    cka_matrix,
    debiased_cka,
    linear_cka,
    rbf_cka,
)

FUNCS = {"linear": linear_cka, "rbf": rbf_cka, "debiased": debiased_cka}


# ------------------------------------------------------- independent references
def _hsic_trace(K: np.ndarray, L: np.ndarray) -> float:
    """Gretton et al. 2005: tr(KHLH)/(n-1)² with an explicit centring matrix H."""
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def _cka_from_grams(K: np.ndarray, L: np.ndarray, hsic=_hsic_trace) -> float:
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _rbf_reference(X: np.ndarray, frac: float) -> np.ndarray:
    D = cdist(X, X, "sqeuclidean")
    return np.exp(-D / (2 * frac**2 * np.median(D)))


def _hsic_u_centering(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC via U-centring (Székely & Rizzo 2014), a different algebraic route."""

    def u_center(G):
        n = G.shape[0]
        G = G.copy()
        np.fill_diagonal(G, 0)
        means = G.sum(0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        G -= means[:, None] + means[None, :]
        np.fill_diagonal(G, 0)
        return G

    n = K.shape[0]
    return np.sum(u_center(K) * u_center(L)) / (n * (n - 3))


def _hsic_u_statistic(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. 2012's U-statistic by brute force over all 4-tuples of distinct indices."""
    n, total, count = K.shape[0], 0.0, 0
    for idx in itertools.permutations(range(n), 4):
        h = 0.0
        for t, u, v, w in itertools.permutations(idx):
            h += K[t, u] * L[t, u] + K[t, u] * L[v, w] - 2 * K[t, u] * L[t, v]
        total += h / 24
        count += 1
    return total / count


def _related(n: int, d1: int, d2: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d1))
    Y = np.tanh(X @ rng.normal(size=(d1, d2)) / np.sqrt(d1)) + 0.5 * rng.normal(size=(n, d2))
    return X, Y


# ----------------------------------------------------------------- properties
@pytest.mark.parametrize("kind", list(FUNCS))
def test_self_similarity_is_one(kind):
    X, _ = _related(120, 12, 5)
    assert FUNCS[kind](X, X) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("kind", list(FUNCS))
def test_invariant_to_orthogonal_transform_and_isotropic_scaling(kind):
    X, Y = _related(150, 12, 7, seed=1)
    Q = ortho_group.rvs(12, random_state=2)
    base = FUNCS[kind](X, Y)
    assert 0.2 < base < 0.95  # a non-trivial value, so the equalities below mean something
    assert FUNCS[kind](X @ Q, Y) == pytest.approx(base, abs=1e-10)
    assert FUNCS[kind](3.7 * X, 0.01 * Y) == pytest.approx(base, abs=1e-10)


def test_not_invariant_to_invertible_non_orthogonal_map():
    # XA with A = diag(a, 1, ..., 1): with XᵀX ≈ nI, linear CKA(X, XA) →
    # tr(A²) / (√d ‖A²‖_F) = (a² + d − 1) / (√d √(a⁴ + d − 1)) = 0.345 for a=10, d=10.
    # A CCA-style measure would give 1 (A is invertible); CKA must not.
    rng = np.random.default_rng(3)
    n, d, a = 4000, 10, 10.0
    X = rng.normal(size=(n, d))
    A = np.diag([a] + [1.0] * (d - 1))
    expected = (a**2 + d - 1) / (np.sqrt(d) * np.sqrt(a**4 + d - 1))
    value = linear_cka(X, X @ A)
    assert value == pytest.approx(expected, abs=0.02)
    assert value < 0.5


def test_accepts_torch_and_numpy_alike():
    X, Y = _related(80, 6, 4)
    ref = linear_cka(X, Y)
    got = linear_cka(torch.tensor(X, dtype=torch.float32), torch.tensor(Y))
    assert got == pytest.approx(ref, abs=1e-6)  # float32 input, float64 arithmetic


# ------------------------------------------------------ against references
@pytest.mark.parametrize("shape", [(200, 20, 15), (30, 100, 80)])  # feature and Gram paths
def test_linear_matches_gram_hsic_formula(shape):
    n, d1, d2 = shape
    X, Y = _related(n, d1, d2, seed=4)
    expected = _cka_from_grams(X @ X.T, Y @ Y.T)
    assert linear_cka(X, Y) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("frac", [0.2, 0.8])
def test_rbf_matches_independent_implementation(frac):
    X, Y = _related(150, 10, 6, seed=5)
    expected = _cka_from_grams(_rbf_reference(X, frac), _rbf_reference(Y, frac))
    assert rbf_cka(X, Y, sigma_frac=frac) == pytest.approx(expected, abs=1e-12)


def test_debiased_matches_u_centering_and_brute_force_u_statistic():
    X, Y = _related(60, 8, 5, seed=6)
    expected = _cka_from_grams(X @ X.T, Y @ Y.T, hsic=_hsic_u_centering)
    assert debiased_cka(X, Y) == pytest.approx(expected, abs=1e-12)
    Xs, Ys = X[:7], Y[:7]
    brute = _cka_from_grams(Xs @ Xs.T, Ys @ Ys.T, hsic=_hsic_u_statistic)
    assert debiased_cka(Xs, Ys) == pytest.approx(brute, abs=1e-10)
    Kr, Lr = _rbf_reference(X, 0.8), _rbf_reference(Y, 0.8)
    expected_rbf = _cka_from_grams(Kr, Lr, hsic=_hsic_u_centering)
    assert debiased_cka(X, Y, kernel="rbf") == pytest.approx(expected_rbf, abs=1e-12)


def test_debiased_is_near_zero_for_independent_representations():
    # Biased linear CKA of independent Gaussians ≈ d/(n+d) = 0.1135 at n=2000, d=256
    # (‖YᵀX‖² ≈ n d², ‖XᵀX‖² ≈ n² d + n d²); the unbiased estimator removes that term.
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(2000, 256)), rng.normal(size=(2000, 256))
    assert linear_cka(X, Y) == pytest.approx(256 / 2256, abs=0.005)
    assert abs(debiased_cka(X, Y)) < 0.005


# --------------------------------------------------------- minibatch / stream
def _feed(acc, X, Y, sizes):
    start = 0
    for size in sizes:
        acc.update(X[start : start + size], Y[start : start + size])
        start += size
    assert start == len(X)
    return acc.value()


def test_streaming_linear_cka_is_exact_for_any_batching():
    X, Y = _related(1000, 30, 20, seed=8)
    X, Y = X + 1e4, Y - 3e3  # large offsets: the merge must stay stable
    sizes = [1, 2, 300, 37, 160, 500]
    assert _feed(StreamingLinearCKA(), X, Y, sizes) == pytest.approx(linear_cka(X, Y), abs=1e-9)


def test_minibatch_cka_with_one_batch_equals_debiased():
    X, Y = _related(500, 16, 8, seed=9)
    assert _feed(MinibatchCKA(), X, Y, [500]) == pytest.approx(debiased_cka(X, Y), abs=1e-12)


@pytest.mark.parametrize("batch", [64, 256, 1024])
def test_minibatch_cka_matches_full_debiased(batch):
    # Each minibatch HSIC₁ is unbiased, so the average estimates the same quantity as
    # the full-data debiased CKA (≈ 0.18 here); the measured gaps are ~1e-3.
    X, Y = _related(8192, 64, 32, seed=10)
    full = debiased_cka(X, Y)
    got = _feed(MinibatchCKA(), X, Y, [batch] * (8192 // batch))
    assert got == pytest.approx(full, abs=0.01)


def test_minibatch_cka_is_unbiased_where_per_batch_biased_cka_is_not():
    # Independent data, batches of 256 in d=256: biased CKA per batch ≈ 256/512 = 0.5.
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(4096, 256)), rng.normal(size=(4096, 256))
    per_batch = [linear_cka(X[i : i + 256], Y[i : i + 256]) for i in range(0, 4096, 256)]
    assert np.mean(per_batch) == pytest.approx(0.5, abs=0.02)
    assert abs(_feed(MinibatchCKA(), X, Y, [256] * 16)) < 0.01


def test_accumulators_reject_misuse():
    with pytest.raises(ValueError, match="before any update"):
        MinibatchCKA().value()
    acc = StreamingLinearCKA().update(np.ones((3, 2)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="feature sizes changed"):
        acc.update(np.ones((3, 5)), np.ones((3, 4)))


# ------------------------------------------------------------------- matrix
@pytest.mark.parametrize("kind", list(FUNCS))
@pytest.mark.parametrize("n", [40, 300])  # n < d (Gram) and n > d (feature form)
def test_cka_matrix_matches_pairwise(kind, n):
    rng = np.random.default_rng(12)
    base = rng.normal(size=(n, 8))
    acts = [
        np.tanh(base @ rng.normal(size=(8, d))) + 0.3 * rng.normal(size=(n, d))
        for d in (50, 64, 30)
    ]
    other = acts[::-1][:2]
    M = cka_matrix(acts, other, kind=kind)
    assert M.shape == (3, 2)
    expected = [[FUNCS[kind](a, b) for b in other] for a in acts]
    np.testing.assert_allclose(M, expected, atol=1e-12)
    S = cka_matrix(acts, kind=kind)
    np.testing.assert_allclose(S, S.T, atol=0)
    np.testing.assert_allclose(np.diag(S), 1.0, atol=1e-10)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(np.ones((5, 2)), np.ones((6, 2)))
    with pytest.raises(ValueError, match="kind must be one of"):
        cka_matrix([np.ones((5, 2))], kind="cca")
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(np.full((5, 2), np.nan), np.ones((5, 2)))
    assert np.isnan(linear_cka(np.ones((5, 2)), np.random.default_rng(0).normal(size=(5, 2))))
