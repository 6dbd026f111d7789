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

from fmlab.fit._problem import _Problem, block_size, working_memory

__all__ = [
    "BatchResult",
    "LSETerm",
    "block_size",
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
