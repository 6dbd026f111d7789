"""Batched trust-region Newton for Huber regression of log-sum-exp models.

Scaling laws such as ``L = E + A N^-α + B D^-β`` (Hoffmann et al. 2022, approach 3) are fit in
log space: ``log L̂ = LSE(a - α log N, b - β log D, e)``, with a Huber loss between ``log L̂``
and the observed ``log L``. Every such model is a log-sum-exp of *terms* that are affine in
their own parameters, ``u_k = θ[params_k] · f_k(x)``, each parameter belonging to exactly one
term; that structure gives the gradient and the exact Hessian in closed form.

Why this module exists: the protocol of Hoffmann et al. (and of Besiroglu et al. 2024, who
showed that Hoffmann's optimizer stopped early) runs L-BFGS from ~4,500 grid starts and refits
thousands of bootstrap resamples. A Python loop over ``scipy.optimize.minimize`` takes many
minutes; here all starts (or resamples, as per-problem weights on the same points) advance
together as numpy arrays of shape ``(S, n)``, problems × data points. The 5×5 Hessians are
tiny, so each iteration takes a trust-region step on the *saddle-free* quadratic model
(absolute eigenvalues of the Hessian, Dauphin et al. 2014) in Jacobi-scaled coordinates, and a
problem stops on its gradient norm, never after a fixed small number of iterations. The
iterations run in float32 until the gradient is small, then in float64
(:func:`minimize_huber_lse`); :func:`fmlab.fit._screen.minimize_screened` runs a grid of
starts a few iterations each and only the best-ranked to convergence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BatchResult",
    "LSETerm",
    "huber",
    "huber_lse_gradient",
    "lse_predict",
    "minimize_huber_lse",
    "working_memory",
]


@dataclass(frozen=True)
class LSETerm:
    """One term ``u = θ[params] · features`` of a log-sum-exp model."""

    params: tuple[int, ...]
    features: np.ndarray  # (n, len(params))


@dataclass(frozen=True)
class BatchResult:
    """Outcome of a batch of minimizations (one row per start or resample)."""

    theta: np.ndarray  # (S, P)
    fun: np.ndarray  # (S,) objective: sum of weighted Huber losses
    grad_norm: np.ndarray  # (S,) max |gradient| at theta
    converged: np.ndarray  # (S,) bool: the gradient test passed
    n_iter: np.ndarray  # (S,) iterations taken
    # (S,) bool: run in float64 until it stopped (converged, trust region collapsed or
    # max_iter); False after polish=False and for starts that screening set aside
    finished: np.ndarray | None = None
    radius: np.ndarray | None = None  # (S,) final trust-region radius (scaled units)


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss: quadratic for ``|r| <= delta``, linear beyond (Huber 1964)."""
    c = np.clip(r, -delta, delta)
    return c * (r - 0.5 * c)


def lse_predict(terms: Sequence[LSETerm], theta: np.ndarray) -> np.ndarray:
    """``LSE_k(u_k)`` for each row of ``theta`` (S, P) → (S, n)."""
    theta = np.atleast_2d(theta)
    us = [theta[:, list(t.params)] @ t.features.T for t in terms]  # K × (S, n)
    mx = np.maximum.reduce(us)
    return mx + np.log(sum(np.exp(u - mx) for u in us))


# The work buffers of a problem hold at most this many (problem, point) pairs: with more points
# than fit beside a full working set, the points are taken in blocks of
# ``_BLOCK_ELEMENTS // rows`` and every sum is accumulated over the blocks. Up to 4,096 points
# (with the default working set of 512 problems) there is one block, the whole data set.
_BLOCK_ELEMENTS = 1 << 21


def block_size(n: int, rows: int) -> int:
    """Points per block for ``n`` points and a working set of ``rows`` problems."""
    return n if rows * n <= _BLOCK_ELEMENTS else max(1, _BLOCK_ELEMENTS // rows)


class _Problem:
    """Data, feature products and reusable work buffers for a batch of problems.

    Every ``(S, n)`` intermediate is written into a buffer allocated once (``out=``): fresh
    ~1 MB temporaries make glibc hand memory back to the OS and page-fault it in again on
    every operation, which measured 5-10x slower than the arithmetic itself. The buffers
    cover at most ``_BLOCK_ELEMENTS`` (problem, point) pairs; more points are taken in
    blocks (:func:`block_size`), so memory beyond the data itself does not grow with ``n``.
    """

    def __init__(self, terms: Sequence[LSETerm], y: np.ndarray, delta: float, rows: int, dtype):
        self.terms, self.dtype = list(terms), np.dtype(dtype)
        self.noise = _NOISE if self.dtype == np.float64 else _NOISE32
        # in float32, a problem whose model predicts less than the noise is done (for now)
        self.stop_at_noise = self.dtype != np.float64
        self.y = np.asarray(y, dtype=dtype)  # (n,)
        self.delta = float(delta)
        self.n_params = 1 + max(p for t in self.terms for p in t.params)
        self.idx = [np.asarray(t.params) for t in self.terms]
        f = [np.asarray(t.features, dtype=dtype) for t in self.terms]  # (n, m_k) each
        self.feat, self.feat_t = f, [np.ascontiguousarray(fk.T) for fk in f]
        n, K = len(y), len(f)
        # (n, m_k * m_l): feature products, so that each Hessian block is a single matmul
        self.pair = {
            (k, j): (f[k][:, :, None] * f[j][:, None, :]).reshape(n, -1)
            for k in range(K)
            for j in range(k, K)
        }
        self.sq = [fk * fk for fk in f]
        size = block_size(n, rows)
        self.blocks = [slice(lo, min(n, lo + size)) for lo in range(0, n, size)]
        # K terms, 5 scratch, weights
        self._buf = np.empty((K + 6, rows, min(n, size)), dtype=dtype)

    def _weights(self, w: np.ndarray, idx: np.ndarray | None, sl: slice) -> np.ndarray:
        """Points ``sl`` of the weights: shared (``idx`` None), or rows ``idx`` of per-problem
        weights (S, n) copied into a reused buffer."""
        if idx is None:
            return w[:, sl]
        out = self._buf[-1, : len(idx), : sl.stop - sl.start]
        np.take(w[:, sl], idx, axis=0, out=out)
        return out

    def _lse(self, theta: np.ndarray, sl: slice):
        """Residual ``LSE - y`` (S, b), the K exp-terms and their sum (buffers, reused)."""
        K, S, b = len(self.terms), theta.shape[0], sl.stop - sl.start
        es = list(self._buf[:K, :S, :b])
        mx, tot, s1 = self._buf[K : K + 3, :S, :b]
        for e, i, ft in zip(es, self.idx, self.feat_t, strict=True):
            np.matmul(theta[:, i].astype(self.dtype), ft[:, sl], out=e)
        np.copyto(mx, es[0])
        for e in es[1:]:
            np.maximum(mx, e, out=mx)
        for e in es:
            # Terms more than e^72 (1/eps^2) below the largest are floored there: their exp()
            # would be denormal, ~100x slower on x86 (many grid starts make a term
            # negligible), and the log-prediction changes by < 1e-31.
            np.subtract(e, mx, out=e)
            np.maximum(e, -72.0, out=e)
            np.exp(e, out=e)
        np.copyto(tot, es[0])
        for e in es[1:]:
            tot += e
        np.log(tot, out=s1)
        mx += s1
        mx -= self.y[sl]
        return mx, es, tot

    def _huber_terms(self, r, w):
        """Weighted Huber values and ``h'`` (in scratch buffers): ``h = c (r - c/2)``."""
        K, S, b = len(self.terms), r.shape[0], r.shape[1]
        h, c = self._buf[K + 2, :S, :b], self._buf[K + 3, :S, :b]
        np.clip(r, -self.delta, self.delta, out=c)  # h'(r)
        np.multiply(c, -0.5, out=h)
        h += r
        h *= c
        h *= w
        return h, c

    def objective(self, theta: np.ndarray, w: np.ndarray, idx=None) -> np.ndarray:
        total = 0.0
        for sl in self.blocks:
            r, _, _ = self._lse(theta, sl)
            h, _ = self._huber_terms(r, self._weights(w, idx, sl))
            total = total + h.sum(-1)
        return total

    def derivatives(self, theta: np.ndarray, w: np.ndarray, idx: np.ndarray | None = None):
        """Objective (S,), gradient (S, P), Hessian (S, P, P), Jacobi scale (S, P).

        ``w``: weights shared by every problem (1, n), or per problem (S_all, n) with ``idx``
        the rows of the problems in ``theta``.
        """
        fun, g, H, scale, wsum = self._block_derivatives(theta, w, idx, self.blocks[0])
        for sl in self.blocks[1:]:
            parts = self._block_derivatives(theta, w, idx, sl)
            for total, part in zip((fun, g, H, scale, wsum), parts, strict=True):
                total += part
        scale = np.sqrt(scale / wsum)
        return fun, g, H, np.maximum(scale, 1e-12)  # scale: RMS sensitivity of log-prediction

    def _block_derivatives(self, theta, w, idx, sl):
        """Sums over the points ``sl``: objective, gradient, Hessian, squared scale, weight."""
        S, K = theta.shape[0], len(self.terms)
        w = self._weights(w, idx, sl)
        r, ps, tot = self._lse(theta, sl)
        h, wdh = self._huber_terms(r, w)
        fun = h.sum(-1)  # h is scratch from here on
        wdh *= w  # w h'(r)
        c1 = self._buf[K + 4, :S, : r.shape[1]]
        np.abs(r, out=c1)
        np.less_equal(c1, self.delta, out=c1)  # h''(r): 1 inside the quadratic zone
        c1 *= w
        c1 -= wdh  # w (h'' - h'): the weight of J J^T in the Hessian
        np.reciprocal(tot, out=tot)
        for p in ps:
            p *= tot  # softmax weights of the terms, (S, b) each
        g, H, scale = self._assemble(ps, wdh, c1, w, h, sl)
        return fun, g, H, scale, w.sum(-1, keepdims=True)

    def _assemble(self, ps, wdh, c1, w, tmp, sl):
        """Gradient, Hessian and squared scale from the per-point weights (one matmul each)."""
        S, P, K = wdh.shape[0], self.n_params, len(self.terms)
        g, H, scale = np.zeros((S, P)), np.zeros((S, P, P)), np.zeros((S, P))
        for k, ik in enumerate(self.idx):
            m = len(ik)
            np.multiply(wdh, ps[k], out=tmp)
            g[:, ik] = tmp @ self.feat[k][sl]
            H[:, ik[:, None], ik[None, :]] += (tmp @ self.pair[k, k][sl]).reshape(S, m, m)
            np.multiply(ps[k], ps[k], out=tmp)
            tmp *= w
            scale[:, ik] = tmp @ self.sq[k][sl]
            for j in range(k, K):
                il = self.idx[j]
                np.multiply(c1, ps[k], out=tmp)
                tmp *= ps[j]
                block = (tmp @ self.pair[k, j][sl]).reshape(S, m, len(il))
                H[:, ik[:, None], il[None, :]] += block
                if j != k:
                    H[:, il[:, None], ik[None, :]] += block.transpose(0, 2, 1)
        return g, H, scale


def _saddle_free_model(g, H, scale):
    """Eigen-decompose the scaled Hessian: ``|eigenvalues|`` (S, P), vectors, rotated gradient."""
    gs = g / scale
    ev, V = np.linalg.eigh(H / (scale[:, :, None] * scale[:, None, :]))  # (S, P), (S, P, P)
    a = np.abs(ev)
    a = np.maximum(a, 1e-12 * a.max(-1, keepdims=True) + 1e-300)
    return a, V, np.einsum("spq,sp->sq", V, gs)


def _trust_region_step(a, V, c, scale, radius):
    """Minimize the saddle-free model within ``||scale * s|| <= radius``; batched over rows.

    Returns the step (S, P), its scaled length (S,) and the model's predicted decrease (S,).
    """
    lam = np.zeros(len(a))
    outside = np.sqrt(((c / a) ** 2).sum(-1)) > radius
    if outside.any():  # Newton on the secular equation 1/||s(λ)|| = 1/radius (Moré–Sorensen)
        co, ao, ro = c[outside], a[outside], radius[outside]
        lo = np.zeros(len(co))
        for _ in range(30):
            z = co / (ao + lo[:, None])
            nz = np.sqrt((z * z).sum(-1))
            dphi = (z * z / (ao + lo[:, None])).sum(-1) / nz**3
            lo = np.maximum(lo - (1.0 / nz - 1.0 / ro) / dphi, 0.0)
            if np.all(np.abs(nz - ro) <= 1e-3 * ro):
                break
        lam[outside] = lo
    denom = a + lam[:, None]
    z = -c / denom
    step = np.einsum("spq,sq->sp", V, z) / scale
    length = np.sqrt((z * z).sum(-1))
    decrease = (c * c * (a + 2 * lam[:, None]) / (2 * denom * denom)).sum(-1)
    return step, length, decrease


# Trust-region constants (Nocedal & Wright 2006, alg. 4.1).
_ACCEPT, _SHRINK_BELOW, _GROW_ABOVE = 1e-4, 0.25, 0.75
_SHRINK, _GROW, _MAX_RADIUS, _MIN_RADIUS = 0.25, 2.0, 1e3, 1e-12
# Objective sums carry rounding noise of ~log2(n) ulp: decreases predicted below this
# fraction of the objective cannot be verified, so such steps are accepted unless they
# clearly increase it (else a tiny last Newton step can be rejected forever).
_NOISE = 1e-12
_NOISE32 = 1e-6  # the same in float32 (eps 6e-8), for the first phase of minimize_huber_lse


class _State:
    """Optimizer state of every problem (float64), updated in place by :func:`_run`."""

    def __init__(self, theta0: np.ndarray, radius: float):
        S, P = theta0.shape
        self.theta = theta0.copy()
        self.fun, self.gnorm = np.full(S, np.inf), np.full(S, np.inf)
        self.grad, self.hess, self.scale = np.zeros((S, P)), np.zeros((S, P, P)), np.ones((S, P))
        self.radius = np.full(S, float(radius))
        self.converged = np.zeros(S, dtype=bool)
        self.stalled = np.zeros(S, dtype=bool)  # see _Problem.stop_at_noise
        self.n_iter = np.zeros(S, dtype=np.int64)
        # eigen-decomposition of each problem's model, reused after a rejected step
        self.eig = (np.ones((S, P)), np.zeros((S, P, P)), np.zeros((S, P)))
        self.stale = np.ones(S, dtype=bool)

    def store(self, idx, fun, grad, hess, scale) -> None:
        self.fun[idx], self.grad[idx], self.hess[idx], self.scale[idx] = fun, grad, hess, scale
        self.gnorm[idx] = np.abs(grad).max(-1)
        self.stale[idx] = True

    def model(self, idx: np.ndarray):
        redo = idx[self.stale[idx]]
        if len(redo):
            model = _saddle_free_model(self.grad[redo], self.hess[redo], self.scale[redo])
            for store, part in zip(self.eig, model, strict=True):
                store[redo] = part
            self.stale[redo] = False
        return tuple(e[idx] for e in self.eig)


def _step(prob: _Problem, st: _State, work: np.ndarray, w, shared: bool) -> None:
    """One trust-region iteration for the problems in ``work``."""
    a, V, c = st.model(work)
    step, length, decrease = _trust_region_step(a, V, c, st.scale[work], st.radius[work])
    noise = prob.noise * np.abs(st.fun[work])
    f, g, H, sc = prob.derivatives(st.theta[work] + step, w, None if shared else work)
    actual = st.fun[work] - f
    rho = np.where(decrease > noise, actual / np.maximum(decrease, 1e-300), 1.0)
    ok = np.isfinite(f) & np.where(decrease > noise, rho > _ACCEPT, actual > -noise)
    if prob.stop_at_noise:
        st.stalled[work] = decrease <= noise
    acc = work[ok]
    st.theta[acc] += step[ok]
    st.store(acc, f[ok], g[ok], H[ok], sc[ok])
    r = st.radius[work]
    r = np.where(rho < _SHRINK_BELOW, _SHRINK * length, r)
    grow = (rho > _GROW_ABOVE) & (length >= 0.99 * r)
    st.radius[work] = np.where(grow, np.minimum(_GROW * r, _MAX_RADIUS), r)
    st.n_iter[work] += 1


def _run(prob: _Problem, st: _State, w, gtol_abs, max_iter: int, rows: int, report=None) -> None:
    """Iterate on a working set of at most ``rows`` problems until every problem stops.

    Problems that stop leave the working set and queued ones take their place, so every
    numpy call works on a full batch. Derivatives are evaluated at each trial point and kept
    when the step is accepted: one evaluation per iteration. ``report(k)``, if given, hears
    how many problems have stopped, each time that number grows.
    """
    S = st.theta.shape[0]
    shared = w.shape[0] == 1  # one weight row for every problem: never copy it
    work, queued, stopped = np.empty(0, dtype=np.int64), 0, 0
    while True:
        if queued < S and len(work) <= rows - rows // 4:
            new = np.arange(queued, min(S, queued + rows - len(work)))
            queued += len(new)
            st.store(new, *prob.derivatives(st.theta[new], w, None if shared else new))
            work = np.concatenate([work, new])
        done = st.gnorm[work] <= gtol_abs[work]
        st.converged[work[done]] = True
        stop = done | st.stalled[work] | (st.radius[work] < _MIN_RADIUS)
        stop |= st.n_iter[work] >= max_iter
        work = work[~stop & np.isfinite(st.fun[work])]
        if report is not None and queued - len(work) > stopped:
            stopped = queued - len(work)
            report(stopped)
        if len(work) == 0:
            if queued >= S:
                return
            continue
        _step(prob, st, work, w, shared)


def minimize_huber_lse(
    terms: Sequence[LSETerm],
    y: np.ndarray,
    theta0: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    delta: float = 1e-3,
    gtol: float = 1e-8,
    max_iter: int = 500,
    radius: float = 1.0,
    chunk_size: int = 512,
    coarse_gtol: float | None = 1e-4,
    polish: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Minimize ``Σ_i w_i huber(LSE_k(u_ik) - y_i, δ)`` from every row of ``theta0``.

    ``weights`` is ``None`` (all ones), ``(n,)`` shared by all starts, or ``(S, n)`` per
    problem: bootstrap resamples are multiplicity weights on the same points, so thousands of
    refits share one data matrix. A problem stops when ``max|∇| <= gtol · δ · Σw`` (δ·Σw
    bounds the gradient of the Huber sum per unit of feature) and counts as converged; it also
    stops, unconverged, when its trust region collapses or after ``max_iter`` iterations.
    A working set of ``chunk_size`` problems keeps the ``(S, n)`` work arrays in cache.

    With ``coarse_gtol``, problems first iterate in float32 until ``max|∇| <= coarse_gtol ·
    δ · Σw`` (float32 passes over the data take ~0.6x the time), then in float64 from where
    they stopped, trust region included, until ``gtol``: the float64 phase decides
    convergence and the result. ``None``: float64 throughout. ``polish=False`` stops after
    the float32 phase: objectives good to ~1e-6 relative, nothing marked converged (the
    screening of :func:`fmlab.fit._screen.minimize_screened`).

    ``progress(done, total)``, if given, hears how far the run is: problems stopped, counted
    once per phase (``total`` is ``S`` or, with a float32 phase, ``2 S``).

    Memory: the data and its feature products (``n`` rows), the weights, and work buffers of
    at most ``_BLOCK_ELEMENTS`` (problem, point) pairs; see :func:`working_memory`.
    """
    y = np.asarray(y, dtype=float)
    theta0 = np.atleast_2d(np.asarray(theta0, dtype=float))  # (S, P)
    S = theta0.shape[0]
    w = np.asarray(1.0 if weights is None else weights, dtype=float)
    w = np.ascontiguousarray(np.broadcast_to(w, (S if w.ndim == 2 else 1, len(y))))
    gtol_abs = np.broadcast_to(gtol * delta * w.sum(-1), (S,))
    rows, st = min(S, chunk_size), _State(theta0, radius)
    two = coarse_gtol is not None and coarse_gtol > gtol and polish
    total = 2 * S if two else S

    def report(offset: int):
        return None if progress is None else (lambda k: progress(offset + k, total))

    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if coarse_gtol is not None and coarse_gtol > gtol:
            w32, coarse = w.astype(np.float32), gtol_abs * (coarse_gtol / gtol)
            prob = _Problem(terms, y, delta, rows, np.float32)
            _run(prob, st, w32, coarse, max_iter, rows, report(0))
            del prob, w32
            st.converged[:], st.stalled[:] = False, False
            st.radius[st.radius < _MIN_RADIUS] = 1e-3  # collapsed on float32 noise: go on
            if not polish:
                return BatchResult(*_result(st), np.zeros(S, dtype=bool), st.radius)
        prob = _Problem(terms, y, delta, rows, np.float64)
        _run(prob, st, w, gtol_abs, max_iter, rows, report(S if two else 0))
    return BatchResult(*_result(st), np.ones(S, dtype=bool), st.radius)


def working_memory(
    n: int, n_problems: int, terms: Sequence[int], *, weight_rows: int = 1, chunk_size: int = 512
) -> int:
    """Bytes that :func:`minimize_huber_lse` allocates, about, beyond its inputs.

    ``terms``: the number of parameters of each term (Chinchilla: ``(2, 2, 1)``);
    ``weight_rows``: 1 for shared weights, else the number of weight rows (the problems).
    Counts the float64 data and feature products, the work buffers (at most
    ``_BLOCK_ELEMENTS`` pairs per buffer), the weights with their float32 copy, and the
    per-problem state (gradients, Hessians, eigenvectors).
    """
    rows = min(n_problems, chunk_size)
    cols = 1 + 3 * sum(terms) + sum(a * b for i, a in enumerate(terms) for b in terms[i:])
    buffers = (len(terms) + 6) * rows * min(n, block_size(n, rows))
    P = sum(terms)
    state = n_problems * (3 * P * P + 8 * P + 8)
    return 8 * (n * cols + buffers + state) + 12 * weight_rows * n


def _result(st: _State) -> tuple[np.ndarray, ...]:
    return st.theta, st.fun, st.gnorm, st.converged, st.n_iter


def huber_lse_gradient(
    terms: Sequence[LSETerm],
    y: np.ndarray,
    theta: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    delta: float = 1e-3,
) -> np.ndarray:
    """Gradient (P,) of the weighted Huber objective at one parameter vector ``theta``."""
    y = np.asarray(y, dtype=float)
    w = np.broadcast_to(np.asarray(1.0 if weights is None else weights, dtype=float), (1, len(y)))
    prob = _Problem(terms, y, delta, rows=1, dtype=np.float64)
    return prob.derivatives(np.asarray(theta, dtype=float)[None, :], w)[1][0]
