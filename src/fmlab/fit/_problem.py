"""The data of a batch of log-sum-exp Huber problems, and the sums over it that
:mod:`fmlab.fit._newton` iterates on: objective, gradient, exact Hessian and Jacobi scale.

Terms are :class:`fmlab.fit._newton.LSETerm` (``params``: parameter indices, ``features``:
``(n, len(params))``). Work buffers are bounded: more points than fit are summed in blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["block_size", "working_memory"]

# Objective sums carry rounding noise of ~log2(n) ulp: decreases predicted below this
# fraction of the objective cannot be verified, so such steps are accepted unless they
# clearly increase it (else a tiny last Newton step can be rejected forever).
_NOISE = 1e-12
_NOISE32 = 1e-6  # the same in float32 (eps 6e-8), for the first phase of minimize_huber_lse


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

    def __init__(self, terms: Sequence[Any], y: np.ndarray, delta: float, rows: int, dtype):
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
    # K terms, 5 scratch, the weights, and np.take's buffered copy of per-problem weights
    buffers = (len(terms) + 6 + (weight_rows > 1)) * rows * min(n, block_size(n, rows))
    P = sum(terms)
    state = n_problems * (3 * P * P + 8 * P + 8)
    return 8 * (n * cols + buffers + state) + 12 * weight_rows * n
