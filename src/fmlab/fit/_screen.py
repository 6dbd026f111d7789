"""Multi-start minimization that runs only the promising starts to convergence.

Hoffmann et al.'s approach 3 optimizes from a grid of ~4,500 starts and keeps the best. On
that grid most of the work is long walks from poor starts (a median of 94 trust-region
iterations per start), while the few starts ranked best after a handful of iterations reach
the best optimum. :func:`minimize_screened` spends the full optimization only on those;
:func:`distinct_optima` picks the runners-up among the finished starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fmlab.fit._large import stage_progress
from fmlab.fit._newton import BatchResult, LSETerm, minimize_huber_lse

__all__ = ["distinct_optima", "minimize_screened"]


def minimize_screened(
    terms: Sequence[LSETerm],
    y: np.ndarray,
    theta0: np.ndarray,
    *,
    basin_tol: Callable[[float], float],
    screen_iter: int = 6,
    keep: float = 0.03,
    min_keep: int = 64,
    min_hits: int = 3,
    weights: np.ndarray | None = None,
    max_iter: int = 500,
    progress: Callable[[str, int, int], None] | None = None,
    **options: Any,
) -> BatchResult:
    """Multi-start :func:`minimize_huber_lse` that runs only the promising starts to the end.

    Every start first takes ``screen_iter`` iterations; the starts are then ranked by their
    objective and run to convergence in slices of ``max(ceil(keep·S), min_keep)``, best
    first, until at least ``min_hits`` finished starts lie within ``basin_tol(best)`` of the
    best objective found (or every start has finished); ``benchmarks/fit_chinchilla.py``
    compares the result with every start run to the end. ``screen_iter=0`` runs every start
    to the end. Rows set aside keep their screening state with ``finished`` False.
    ``progress(stage, done, total)``, if given, hears how far each stage is.
    """
    theta0 = np.atleast_2d(np.asarray(theta0, dtype=float))
    S = theta0.shape[0]
    w = None if weights is None else np.asarray(weights, dtype=float)
    per_row = w is not None and w.ndim == 2

    def run(rows, start, iters: int, polish: bool = True, report=None) -> BatchResult:
        rw = w[rows] if per_row else w
        return minimize_huber_lse(
            terms, y, start, weights=rw, max_iter=iters, polish=polish, progress=report, **options
        )

    def stage(name: str, lo: int, size: int, total: int):
        return stage_progress(progress, name, lo, size, total)

    if screen_iter <= 0 or min_keep >= S:
        return run(np.arange(S), theta0, max_iter, report=stage(f"{S} starts", 0, S, S))
    # with a float32 phase, screening stays in float32: ranking needs no more precision, and
    # a start that converged there is certified when its slice is polished
    coarse = options.get("coarse_gtol", 1e-4) is not None
    report = stage(f"screening {S} starts", 0, S, S)
    first = run(np.arange(S), theta0, min(screen_iter, max_iter), not coarse, report)
    theta, fun, gnorm = first.theta.copy(), first.fun.copy(), first.grad_norm.copy()
    radius = first.radius.copy()
    converged, n_iter = first.converged.copy(), first.n_iter.copy()
    if coarse:
        finished = np.zeros(S, dtype=bool)
    else:
        finished = converged | (n_iter < min(screen_iter, max_iter)) | (screen_iter >= max_iter)
    order = np.argsort(np.where(np.isfinite(fun), fun, np.inf), kind="stable")
    order = order[~finished[order]]
    size = max(math.ceil(keep * S), min_keep)
    for lo in range(0, len(order), size):
        rows = order[lo : lo + size]
        report = stage("the best starts to convergence", lo, len(rows), len(order))
        res = run(rows, theta[rows], max_iter - screen_iter, report=report)
        theta[rows], fun[rows], gnorm[rows] = res.theta, res.fun, res.grad_norm
        converged[rows], finished[rows], radius[rows] = res.converged, True, res.radius
        n_iter[rows] += res.n_iter
        done = np.where(finished & np.isfinite(fun), fun, np.inf)
        best = done.min()
        if np.sum(done - best <= basin_tol(float(best))) >= min_hits:
            break
    return BatchResult(theta, fun, gnorm, converged, n_iter, finished, radius)


def distinct_optima(theta, fun, converged, best, tol, k) -> np.ndarray:
    """The ``k`` lowest converged local optima other than the best basin (by objective)."""
    chosen: list[int] = []
    for i in np.argsort(fun):
        if len(chosen) == k:
            break
        if not converged[i] or not np.isfinite(fun[i]) or fun[i] - fun[best] <= tol:
            continue
        if all(abs(fun[i] - fun[j]) > tol for j in chosen):
            chosen.append(int(i))
    return theta[chosen]
