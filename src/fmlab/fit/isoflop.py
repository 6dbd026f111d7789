"""Approach 2 of Hoffmann et al. 2022: IsoFLOP profiles.

For each FLOP budget C, runs of several model sizes trained with exactly that compute trace a
valley of final loss against log N; a parabola through it gives the loss-optimal size
``N_opt(C)`` (and ``D_opt = C / (6 N_opt)``). Power laws ``N_opt ∝ C^a`` and ``D_opt ∝ C^b``
across budgets then give the compute-optimal allocation; Hoffmann et al. report
``a ≈ 0.49, b ≈ 0.51``. Under the parametric law of approach 3, ``a = β / (α + β)``.
Bootstrap CIs resample runs within each budget (the budgets are the design, not a sample).
Many runs: the resample weights are drawn and used in batches of at most ``BOOT_ELEMENTS``
(resample, run) pairs (the same draws as all at once); a budget with more than
``FAST_DRAWS_ABOVE`` runs draws them as counts of uniform picks (``bootstrap_counts``), the
same multinomial distribution at a fraction of ``rng.multinomial``'s time.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from fmlab.fit import _large
from fmlab.fit._common import (
    BOOT_ELEMENTS,
    FitWarning,
    bootstrap_counts,
    count_bytes,
    percentile_ci,
)
from fmlab.fit.power import fit_loglinear
from fmlab.fit.validation import check_positive_finite
from fmlab.stats import CI

__all__ = ["IsoFlopFit"]

#: Budgets with more runs than this draw their resamples with :func:`bootstrap_counts`.
FAST_DRAWS_ABOVE = 4096


def _resample_weights(rng: np.random.Generator, n: int, n_resamples: int):
    """Multinomial(n, uniform) weights (b, n), ``n_resamples`` in all, in batches."""
    batch = max(1, min(n_resamples, BOOT_ELEMENTS // n))
    for lo in range(0, n_resamples, batch):
        b = min(batch, n_resamples - lo)
        if n > FAST_DRAWS_ABOVE:
            yield bootstrap_counts(n, b, rng)
        else:
            yield rng.multinomial(n, np.full(n, 1 / n), size=b).astype(float)


def _parabola_vertex(v: np.ndarray, loss: np.ndarray, w: np.ndarray):
    """Weighted fits ``loss = c0 + c1 v + c2 v²`` for each row of ``w`` (B, n).

    Returns the vertex ``v* = -c1 / (2 c2)`` and the loss there, each (B,); NaN where the
    parabola opens downward or the design is singular (fewer than 3 distinct sizes drawn).
    """
    X = np.stack([np.ones_like(v), v, v * v], 1)  # (n, 3)
    xtx = (w @ (X[:, :, None] * X[:, None, :]).reshape(len(v), 9)).reshape(-1, 3, 3)
    xty = w @ (X * loss[:, None])  # (B, 3)
    ok = np.abs(np.linalg.det(xtx)) > 1e-10 * np.abs(xtx).max(axis=(1, 2)) ** 3
    xtx[~ok] = np.eye(3)
    c = np.linalg.solve(xtx, xty[..., None])[..., 0]  # (B, 3)
    ok &= c[:, 2] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.where(ok, -c[:, 1] / (2 * c[:, 2]), np.nan)
    return vertex, c[:, 0] + c[:, 1] * vertex + c[:, 2] * vertex**2


def _loglinear_rows(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    """Slope of ``ly[b] ~ lx`` for each row b (B, J); NaN if any budget failed."""
    dx = lx - lx.mean()
    return ((ly - ly.mean(1, keepdims=True)) @ dx) / (dx @ dx)


class IsoFlopFit:
    """Compute-optimal allocation from IsoFLOP profiles (Hoffmann et al. 2022, approach 2).

    ``fit(N, loss, C)`` takes one row per run: model size, final loss and the FLOP budget the
    run belongs to (runs are grouped by equal ``C``; round measured FLOPs to the nominal
    budget first). Budgets with fewer than ``min_runs`` distinct sizes or a parabola that
    opens downward are skipped with a warning; a vertex outside the sampled sizes is kept
    but flagged (``optima_["extrapolated"]``), since it rests on the parabola's tails.

    Fitted: ``optima_`` (one row per budget: C, N_opt, D_opt, loss_opt, n_runs,
    extrapolated), ``a_`` and ``b_`` (exponents of ``N_opt ∝ C^a``, ``D_opt ∝ C^b``),
    ``N_coef_`` and ``D_coef_`` (the prefactors), ``ci_`` (a, b) and ``bootstrap_`` (B, 2).
    ``b_ = 1 - a_`` exactly, because ``D_opt = C / (6 N_opt)``. ``max_memory``: refuse a fit
    whose :meth:`memory_estimate` exceeds it (default ``$FMLAB_FIT_MAX_MEMORY`` or 4 GiB);
    ``progress(stage, done, total)`` hears how far the bootstrap is.
    """

    def __init__(
        self,
        *,
        n_bootstrap: int = 2000,
        confidence: float = 0.95,
        seed: int = 0,
        min_runs: int = 3,
        max_memory: str | float | None = None,
        progress: _large.Progress | None = None,
    ):
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.seed = seed
        self.min_runs = max(3, min_runs)
        self.max_memory = max_memory
        self.progress = progress

    def memory_estimate(self, n: int) -> int:
        """Peak bytes of :meth:`fit` on ``n`` runs, about (the largest budget may hold all)."""
        batch = min(self.n_bootstrap, max(1, BOOT_ELEMENTS // max(n, 1)))
        draws = count_bytes(n, batch) if n > FAST_DRAWS_ABOVE else 16 * n * batch
        return 8 * 24 * n + draws * (self.n_bootstrap > 0) + 8 * 40 * self.n_bootstrap

    def _budget_optimum(self, c: float, N: np.ndarray, loss: np.ndarray):
        """The parabola's optimum for one budget, or None (with a warning) if unusable."""
        mean = np.log(N).mean()
        v = np.log(N) - mean  # centred log N: a well-conditioned design
        why = None
        if len(np.unique(v)) < self.min_runs:
            why = f"fewer than {self.min_runs} distinct sizes"
        else:
            vertex, lopt = _parabola_vertex(v, loss, np.ones((1, len(v))))
            if np.isnan(vertex[0]):
                why = "the loss is not convex in log N"
        if why is not None:
            warnings.warn(f"budget C={c:.3g} skipped: {why}", FitWarning, stacklevel=3)
            return None
        self._groups.append((v, loss, mean))
        n_opt = float(np.exp(vertex[0] + mean))
        extrapolated = not N.min() <= n_opt <= N.max()
        return (c, n_opt, c / (6 * n_opt), float(lopt[0]), len(v), extrapolated)

    def fit(self, N: Any, loss: Any, C: Any) -> IsoFlopFit:
        arrays = check_positive_finite({"N": N, "loss": loss, "C": C})
        N, loss, budget = arrays["N"], arrays["loss"], arrays["C"]
        n = len(N)
        _large.check_memory(f"IsoFlopFit on {n:,} runs", self.memory_estimate(n), self.max_memory)
        self._groups: list[tuple[np.ndarray, np.ndarray, float]] = []
        rows = []
        for c in np.unique(budget):  # a loop, not a comprehension: warnings' stacklevel
            row = self._budget_optimum(c, N[budget == c], loss[budget == c])
            if row is not None:
                rows.append(row)
        if len(rows) < 2:
            raise ValueError(f"need at least 2 usable FLOP budgets, got {len(rows)}")
        cols = ["C", "N_opt", "D_opt", "loss_opt", "n_runs", "extrapolated"]
        self.optima_ = pd.DataFrame(rows, columns=cols)
        if self.optima_["extrapolated"].any():
            bad = self.optima_.loc[self.optima_["extrapolated"], "C"].tolist()
            msg = f"optimum outside the sampled sizes for budgets {bad}"
            warnings.warn(msg, FitWarning, stacklevel=2)
        lc = np.log(self.optima_["C"].to_numpy())
        cn, a = fit_loglinear(lc, np.log(self.optima_["N_opt"].to_numpy()))
        cd, b = fit_loglinear(lc, np.log(self.optima_["D_opt"].to_numpy()))
        self.a_, self.b_ = float(a), float(b)
        self.N_coef_, self.D_coef_ = float(np.exp(cn)), float(np.exp(cd))
        if self.n_bootstrap > 0:
            self._bootstrap(lc)
        return self

    def _bootstrap(self, lc: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        log_nopt = []
        for j, (v, loss, mean) in enumerate(self._groups):  # resample runs within each budget
            batches = _resample_weights(rng, len(v), self.n_bootstrap)
            vertex = []
            for w in batches:
                vertex.append(_parabola_vertex(v, loss, w)[0])
                del w  # before the next batch is drawn
            vertex = np.concatenate(vertex)
            log_nopt.append(vertex + mean)
            if self.progress is not None:
                self.progress("bootstrap (per budget)", j + 1, len(self._groups))
        ln = np.stack(log_nopt, 1)  # (B, J)
        a = _loglinear_rows(lc, ln)
        self.bootstrap_ = np.stack([a, 1 - a], 1)  # (B, 2); D_opt = C/(6 N_opt) ⇒ b = 1 - a
        self.bootstrap_failed_ = float(np.isnan(a).mean())
        self.ci_: dict[str, CI] = {
            "a": percentile_ci(self.a_, a, self.confidence, len(lc)),
            "b": percentile_ci(self.b_, 1 - a, self.confidence, len(lc)),
        }

    def predict_optimal(self, C: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(N_opt, D_opt)`` at budgets ``C`` from the fitted power laws."""
        C = np.asarray(C, dtype=float)
        return self.N_coef_ * C**self.a_, self.D_coef_ * C**self.b_
