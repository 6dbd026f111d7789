"""Representation similarity by centered kernel alignment (CKA).

CKA compares two representations of the *same* n examples, X (n, d1) and Y (n, d2),
through their example-by-example kernel matrices K = k(X, X), L = l(Y, Y):

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

Kornblith et al. 2019 ("Similarity of Neural Network Representations Revisited", ICML)
introduced it because it is invariant to orthogonal transforms and isotropic scaling
of either representation (what a network can do "for free") but, unlike CCA, *not* to
arbitrary invertible linear maps, which would make any two wide representations look
identical once n <= d.

Estimators here, and which is which:

* :func:`linear_cka`, :func:`rbf_cka` — the biased (V-statistic) HSIC of Gretton et al.
  2005, as in Kornblith et al. Biased upwards for finite n: two *independent* random
  representations score about d / (n + d), not 0.
* :func:`debiased_cka` — the unbiased HSIC estimator of Song et al. 2012 (JMLR), as used
  by Nguyen, Raghu & Kornblith 2021 ("Do Wide and Deep Networks Learn the Same Things?",
  ICLR). Close to 0 for independent representations; can be slightly negative.
* :class:`MinibatchCKA` — Nguyen et al. 2021's minibatch estimator: unbiased HSIC
  averaged over minibatches, then the CKA ratio. Memory O(batch · d), not O(n²); it
  estimates the same population quantity as :func:`debiased_cka` but is *not* equal to
  it on the same data (different batches give slightly different values).
* :class:`StreamingLinearCKA` — *exact* linear CKA from accumulated cross-covariances:
  bit-for-bit the same quantity as :func:`linear_cka` on the concatenated data (up to
  floating point), in O(d1² + d2² + d1·d2) memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fmlab.measure._arrays import ArrayLike, as_float64

KINDS = ("linear", "rbf", "debiased")


# --------------------------------------------------------------------- helpers
def _paired(X: ArrayLike, Y: ArrayLike, min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    X, Y = as_float64(X, "X", ndim=2), as_float64(Y, "Y", ndim=2)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"X and Y must describe the same examples: got {X.shape[0]} and {Y.shape[0]} rows"
        )
    if X.shape[0] < min_n:
        raise ValueError(f"need at least {min_n} examples, got {X.shape[0]}")
    return X, Y


def _center(X: np.ndarray) -> np.ndarray:
    return X - X.mean(axis=0, keepdims=True)  # (n, d)


def _ratio(num: float, a: float, b: float) -> float:
    """num / sqrt(a b); NaN where a representation is constant (CKA is undefined)."""
    den = a * b
    return float(num / np.sqrt(den)) if den > 0 else float("nan")


def _gram_is_cheaper(n: int, d1: int, d2: int) -> bool:
    # Gram form costs n²(d1 + d2); feature form n(d1 d2 + d1² + d2²).
    return n * (d1 + d2) < d1 * d2 + d1 * d1 + d2 * d2


def _center_gram(K: np.ndarray) -> np.ndarray:
    """H K H with H = I - 11ᵀ/n, without forming H."""
    means = K.mean(axis=0)  # (n,), K symmetric
    return K - means[None, :] - means[:, None] + means.mean()


def _sq_distances(X: np.ndarray) -> np.ndarray:
    sq = (X * X).sum(axis=1)  # (n,)
    D = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)  # (n, n)
    return np.maximum(D, 0.0)


def _rbf_gram(X: np.ndarray, sigma_frac: float) -> np.ndarray:
    """RBF kernel with bandwidth sigma = sigma_frac * median pairwise distance.

    As in Kornblith et al.'s reference code, the median is taken over the full n×n
    squared-distance matrix (its zero diagonal included), so the bandwidth, and hence
    RBF CKA, is invariant to isotropic scaling of X.
    """
    if sigma_frac <= 0:
        raise ValueError(f"sigma_frac must be > 0, got {sigma_frac}")
    D = _sq_distances(X)  # (n, n)
    med = float(np.median(D))
    if med == 0.0:
        return np.ones_like(D)  # all points (mostly) identical: a constant kernel
    return np.exp(-D / (2.0 * sigma_frac**2 * med))


def _hsic_unbiased_gram(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC (Song et al. 2012, eq. 5) from Gram matrices whose diagonal is zero."""
    n = K.shape[0]
    k1, l1 = K.sum(axis=1), L.sum(axis=1)  # K̃1, L̃1  (n,)
    term = np.vdot(K, L) + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)
    return float(term / (n * (n - 3)))


def _hsic_unbiased_linear(X: np.ndarray, Y: np.ndarray) -> float:
    """Unbiased HSIC for linear kernels without the n×n matrices: O(n d1 d2).

    With K = XXᵀ, L = YYᵀ and K̃, L̃ their zero-diagonal versions:
    tr(K̃L̃) = ‖YᵀX‖²_F − Σᵢ KᵢᵢLᵢᵢ and K̃1 = X(Xᵀ1) − diag K.
    """
    n = X.shape[0]
    kd, ld = (X * X).sum(axis=1), (Y * Y).sum(axis=1)  # diag K, diag L  (n,)
    trace = np.sum((Y.T @ X) ** 2) - kd @ ld
    k1 = X @ X.sum(axis=0) - kd  # K̃1  (n,)
    l1 = Y @ Y.sum(axis=0) - ld  # L̃1  (n,)
    term = trace + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)
    return float(term / (n * (n - 3)))


def _zero_diag(K: np.ndarray) -> np.ndarray:
    K = K.copy()
    np.fill_diagonal(K, 0.0)
    return K


def _prepare(X: np.ndarray, kind: str, sigma_frac: float, feature_form: bool) -> np.ndarray:
    """Per-layer object that makes every pair cheap: centred features or a Gram matrix."""
    if kind == "rbf":
        return _center_gram(_rbf_gram(X, sigma_frac))  # (n, n)
    # Unbiased HSIC is translation invariant too; there centring only keeps the
    # subtractions inside _hsic_unbiased_* from cancelling catastrophically.
    Xc = _center(X)  # (n, d)
    if feature_form:
        return Xc
    return Xc @ Xc.T if kind == "linear" else _zero_diag(Xc @ Xc.T)  # (n, n)


def _pair_fn(kind: str, feature_form: bool) -> Callable[[np.ndarray, np.ndarray], float]:
    """HSIC between two prepared layers (up to a factor that cancels in the CKA ratio)."""
    if kind == "debiased":
        return _hsic_unbiased_linear if feature_form else _hsic_unbiased_gram
    if feature_form:
        return lambda X, Y: float(np.sum((Y.T @ X) ** 2))  # ‖YᵀX‖²_F, centred features
    return lambda K, L: float(np.vdot(K, L))


def _cka_pair(X: ArrayLike, Y: ArrayLike, kind: str, sigma_frac: float = 0.8) -> float:
    X, Y = _paired(X, Y, min_n=4 if kind == "debiased" else 2)
    feature_form = kind != "rbf" and not _gram_is_cheaper(X.shape[0], X.shape[1], Y.shape[1])
    pair = _pair_fn(kind, feature_form)
    K, L = (_prepare(Z, kind, sigma_frac, feature_form) for Z in (X, Y))
    return _ratio(pair(K, L), pair(K, K), pair(L, L))


# --------------------------------------------------------------- full-batch CKA
def linear_cka(X: ArrayLike, Y: ArrayLike) -> float:
    """Linear CKA (Kornblith et al. 2019, eq. 5) between X (n, d1) and Y (n, d2).

    Uses the feature-space identity HSIC ∝ ‖YᵀX‖²_F on centred features, so CKA is
    ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) in O(n·d²) time and O(d²) extra memory — no n×n
    matrix. When n is small next to d the equivalent Gram form ⟨XXᵀ, YYᵀ⟩ is cheaper and
    is used instead (same number). Returns NaN if either representation is constant.
    """
    return _cka_pair(X, Y, "linear")


def rbf_cka(X: ArrayLike, Y: ArrayLike, sigma_frac: float = 0.8) -> float:
    """CKA with RBF kernels (Kornblith et al. 2019, §3), biased HSIC.

    ``sigma_frac`` sets each bandwidth as a fraction of the median pairwise distance
    of that representation (Kornblith et al. report 0.2, 0.4, 0.8). O(n²) memory.
    """
    return _cka_pair(X, Y, "rbf", sigma_frac)


def debiased_cka(
    X: ArrayLike, Y: ArrayLike, kernel: str = "linear", sigma_frac: float = 0.8
) -> float:
    """CKA from the unbiased HSIC estimator (Song et al. 2012; Nguyen et al. 2021, §3).

    The biased estimator adds a positive term of order d/n, so two independent random
    representations get linear CKA ≈ d/(n+d); the unbiased one removes it and is ≈ 0
    there. Needs n >= 4. ``kernel`` is ``"linear"`` (feature-space form when n > d, no
    n×n matrix) or ``"rbf"`` (bandwidth as in :func:`rbf_cka`). The value can be
    slightly negative.
    """
    if kernel == "rbf":
        X, Y = _paired(X, Y, min_n=4)
        K, L = (_zero_diag(_rbf_gram(Z, sigma_frac)) for Z in (X, Y))
        return _ratio(
            _hsic_unbiased_gram(K, L), _hsic_unbiased_gram(K, K), _hsic_unbiased_gram(L, L)
        )
    if kernel != "linear":
        raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")
    return _cka_pair(X, Y, "debiased")


# ------------------------------------------------------------------ layer × layer
def _as_layers(acts: Sequence[ArrayLike], name: str) -> list[np.ndarray]:
    layers = [as_float64(a, f"{name}[{i}]", ndim=2) for i, a in enumerate(acts)]
    if not layers:
        raise ValueError(f"{name} has no layers")
    return layers


def cka_matrix(
    acts_a: Sequence[ArrayLike],
    acts_b: Sequence[ArrayLike] | None = None,
    *,
    kind: str = "linear",
    sigma_frac: float = 0.8,
) -> np.ndarray:
    """CKA between every layer of ``acts_a`` and every layer of ``acts_b``: (La, Lb).

    Each element is an (n, d_layer) activation matrix over the same n examples (flatten
    (B, T, D) to (B·T, D) first if tokens are the examples). ``acts_b=None`` compares
    ``acts_a`` with itself (symmetric, half the work). ``kind`` is one of ``linear``,
    ``rbf``, ``debiased`` (as :func:`linear_cka`, :func:`rbf_cka`, :func:`debiased_cka`).
    Each layer is prepared once: for linear/debiased with n large next to d, as centred
    features (no n×n matrix); otherwise as an n×n Gram matrix, so memory is then
    (La + Lb)·n²·8 bytes — use :class:`MinibatchCKA` per pair beyond that.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    same = acts_b is None
    A = _as_layers(acts_a, "acts_a")
    B = A if acts_b is None else _as_layers(acts_b, "acts_b")
    ns = {Z.shape[0] for Z in A + B}
    if len(ns) != 1:
        raise ValueError(f"all layers must have the same number of examples, got {sorted(ns)}")
    n, d_max = ns.pop(), max(Z.shape[1] for Z in A + B)
    if n < (4 if kind == "debiased" else 2):
        raise ValueError(f"too few examples for {kind} CKA: {n}")
    feature_form = kind != "rbf" and not _gram_is_cheaper(n, d_max, d_max)
    pair = _pair_fn(kind, feature_form)
    prep_a = [_prepare(Z, kind, sigma_frac, feature_form) for Z in A]
    prep_b = prep_a if same else [_prepare(Z, kind, sigma_frac, feature_form) for Z in B]
    self_a = [pair(K, K) for K in prep_a]
    self_b = self_a if same else [pair(L, L) for L in prep_b]
    out = np.empty((len(A), len(B)))
    for i, K in enumerate(prep_a):
        for j in range(i if same else 0, len(B)):
            out[i, j] = _ratio(pair(K, prep_b[j]), self_a[i], self_b[j])
            if same:
                out[j, i] = out[i, j]
    return out


# ------------------------------------------------------------ minibatch / streaming
class MinibatchCKA:
    """Minibatch debiased linear CKA (Nguyen, Raghu & Kornblith 2021, §3.1).

    For k minibatches, CKA = mean HSIC₁(Xᵢ, Yᵢ) / sqrt(mean HSIC₁(Xᵢ, Xᵢ) · mean
    HSIC₁(Yᵢ, Yᵢ)), with HSIC₁ the unbiased estimator of Song et al. 2012. Because
    each HSIC₁ is unbiased, the averages are unbiased for the population HSIC whatever
    the batch size, so this converges to the same value as :func:`debiased_cka` — but it
    is an *estimate*, not equal to it on the same data. Each batch needs >= 4 examples
    (use batches of hundreds or more: small batches only add variance).

    ``update`` returns ``self`` so calls can be chained; ``value()`` may be called at
    any point.
    """

    def __init__(self) -> None:
        self._xy = self._xx = self._yy = 0.0
        self.n_batches = 0
        self.n_examples = 0

    def update(self, X_batch: ArrayLike, Y_batch: ArrayLike) -> MinibatchCKA:
        X, Y = _paired(X_batch, Y_batch, min_n=4)
        X, Y = _center(X), _center(Y)  # translation invariant; for numerical safety
        self._xy += _hsic_unbiased_linear(X, Y)
        self._xx += _hsic_unbiased_linear(X, X)
        self._yy += _hsic_unbiased_linear(Y, Y)
        self.n_batches += 1
        self.n_examples += X.shape[0]
        return self

    def value(self) -> float:
        if self.n_batches == 0:
            raise ValueError("MinibatchCKA.value() called before any update()")
        return _ratio(self._xy, self._xx, self._yy)  # the 1/k factors cancel


class StreamingLinearCKA:
    """Exact linear CKA over a stream of batches, from accumulated (cross-)covariances.

    Linear CKA depends on the data only through the centred second moments XcᵀXc,
    YcᵀYc and YcᵀXc (see :func:`linear_cka`), and those can be merged batch by batch
    exactly (Chan, Golub & LeVeque 1979's pairwise update, which is stable when means
    are large). So after seeing all batches, ``value()`` equals :func:`linear_cka` on
    the concatenated data up to floating-point rounding — unlike :class:`MinibatchCKA`,
    which estimates the *debiased* CKA. Memory is O(d1² + d2² + d1·d2), independent of n.
    """

    def __init__(self) -> None:
        self.n_examples = 0
        self._mx = self._my = np.zeros(0)  # running means  (d1,), (d2,)
        self._cxx = self._cyy = self._cyx = np.zeros((0, 0))  # centred co-moments

    def update(self, X_batch: ArrayLike, Y_batch: ArrayLike) -> StreamingLinearCKA:
        X, Y = _paired(X_batch, Y_batch, min_n=1)
        if self.n_examples and (X.shape[1], Y.shape[1]) != (len(self._mx), len(self._my)):
            raise ValueError(
                f"feature sizes changed between batches: {(len(self._mx), len(self._my))}"
                f" then {(X.shape[1], Y.shape[1])}"
            )
        m = X.shape[0]
        mx, my = X.mean(axis=0), Y.mean(axis=0)  # (d1,), (d2,)
        Xc, Yc = X - mx, Y - my
        cxx, cyy, cyx = Xc.T @ Xc, Yc.T @ Yc, Yc.T @ Xc  # (d1,d1), (d2,d2), (d2,d1)
        if self.n_examples == 0:
            self._mx, self._my, self._cxx, self._cyy, self._cyx = mx, my, cxx, cyy, cyx
        else:
            n = self.n_examples
            dx, dy = mx - self._mx, my - self._my  # (d1,), (d2,)
            w = n * m / (n + m)
            self._cxx = self._cxx + cxx + w * np.outer(dx, dx)
            self._cyy = self._cyy + cyy + w * np.outer(dy, dy)
            self._cyx = self._cyx + cyx + w * np.outer(dy, dx)
            self._mx = self._mx + dx * (m / (n + m))
            self._my = self._my + dy * (m / (n + m))
        self.n_examples += m
        return self

    def value(self) -> float:
        if self.n_examples < 2:
            raise ValueError("StreamingLinearCKA needs at least 2 examples before value()")
        return _ratio(np.sum(self._cyx**2), np.sum(self._cxx**2), np.sum(self._cyy**2))
