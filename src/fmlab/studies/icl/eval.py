"""Scoring in-context learners on shared prompts: error curves and paired comparisons.

Every learner (the trained transformer and each classical baseline) is scored on the
very same seeded prompts, so comparisons are paired: the variation between prompts,
which both learners share, cancels (Garg et al. 2022 plot means over a common set of
prompts; here each point carries a bootstrap CI over prompts and each comparison a
paired test, Holm-corrected across the prompt lengths compared).

Errors are Garg's normalized squared errors ``(ŷ − y)² / d``, one per prompt and
number ``k`` of in-context examples: arrays of shape ``(n_prompts, n_points)`` whose
column ``k`` is the prediction of ``y_k`` from the ``k`` examples before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from fmlab.device import device_of, place
from fmlab.stats import bootstrap_ci, holm_bonferroni, paired_bootstrap, permutation_test
from fmlab.tasks.icl import ICLBatch
from fmlab.tasks.icl_baselines import BASELINES, lasso, normalized_squared_error

EVAL_CHUNK = 512  # prompts per forward pass


@torch.no_grad()
def model_errors(model: torch.nn.Module, prompts: ICLBatch) -> np.ndarray:
    """The model's normalized squared errors ``(n_prompts, n_points)`` (float64)."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    preds = [
        model(
            *place((prompts.xs[i : i + EVAL_CHUNK], prompts.ys[i : i + EVAL_CHUNK]), device)
        ).cpu()
        for i in range(0, prompts.batch_size, EVAL_CHUNK)
    ]
    model.train(was_training)
    pred = torch.cat(preds).double()
    return normalized_squared_error(pred, prompts.ys.double(), prompts.xs.shape[2]).numpy()


def baseline_errors(name: str, prompts: ICLBatch, **options: float) -> np.ndarray:
    """A baseline's normalized squared errors ``(n_prompts, n_points)``; ``options`` are
    bound to it (e.g. ``alpha`` of ridge)."""
    fn = BASELINES[name]
    pred = fn(prompts.xs, prompts.ys, **options).double()
    return normalized_squared_error(pred, prompts.ys.double(), prompts.xs.shape[2]).numpy()


def best_lasso_errors(prompts: ICLBatch, alphas: Sequence[float]) -> tuple[np.ndarray, list]:
    """Lasso at the best of ``alphas`` for each k (lowest mean error on these prompts),
    as Garg et al. report Lasso at its best regularisation. Picking on the evaluation
    prompts favours Lasso, which makes "the transformer approaches Lasso" harder."""
    runs = []
    for alpha in alphas:
        pred = lasso(prompts.xs, prompts.ys, alpha=alpha).double()
        runs.append(normalized_squared_error(pred, prompts.ys.double(), prompts.xs.shape[2]))
    stacked = torch.stack(runs).numpy()  # (n_alphas, B, k)
    best = stacked.mean(axis=1).argmin(axis=0)  # (k,)
    errors = stacked[best, :, np.arange(stacked.shape[2])].T  # (B, k)
    return errors, [float(alphas[i]) for i in best]


@dataclass(frozen=True)
class Point:
    """One point of an error curve: estimate with a 95 % bootstrap CI over prompts."""

    k: int
    estimate: float
    low: float
    high: float


def curve(
    errors: np.ndarray,
    *,
    statistic: Callable = np.mean,
    n_resamples: int,
    seed: int,
) -> list[Point]:
    """Mean (or median) error at each k with its BCa bootstrap CI over prompts."""
    points = []
    for k in range(errors.shape[1]):
        ci = bootstrap_ci(errors[:, k], statistic, n_resamples=n_resamples, seed=seed + k)
        points.append(Point(k, ci.estimate, ci.low, ci.high))
    return points


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of learner A with learner B at ``k`` examples."""

    k: int
    diff: float  # statistic(A) − statistic(B)
    low: float
    high: float
    p: float  # permutation test
    p_holm: float  # Holm-adjusted over the family it was tested in

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def compare(
    a: np.ndarray,
    b: np.ndarray,
    ks: Sequence[int],
    *,
    alternative: str = "two-sided",
    statistic: Callable = np.mean,
    n_resamples: int,
    seed: int,
) -> list[Comparison]:
    """A vs B at each ``k`` of ``ks``: paired bootstrap CI of the difference of
    ``statistic``, a paired (sign-flip) permutation test, Holm across the ``ks``."""
    raw = []
    for k in ks:
        ci = paired_bootstrap(a[:, k], b[:, k], statistic, n_resamples=n_resamples, seed=seed + k)
        test = permutation_test(
            a[:, k],
            b[:, k],
            statistic=statistic,
            n_resamples=n_resamples,
            seed=seed + k,
            alternative=alternative,
        )
        raw.append((k, ci, test.pvalue))
    adjusted = holm_bonferroni([p for *_, p in raw]).pvalues_adjusted if raw else []
    return [
        Comparison(k, ci.estimate, ci.low, ci.high, float(p), float(ph))
        for (k, ci, p), ph in zip(raw, adjusted, strict=True)
    ]


def holm_family(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Re-adjust the raw p-values of several comparison lists as one Holm family."""
    adjusted = holm_bonferroni([c.p for c in comparisons]).pvalues_adjusted
    return [
        Comparison(c.k, c.diff, c.low, c.high, c.p, float(ph))
        for c, ph in zip(comparisons, adjusted, strict=True)
    ]


def pooled_ratio(a: np.ndarray, b: np.ndarray, ks: Sequence[int], *, n_resamples: int, seed: int):
    """``Σ_k mean(A_k) / Σ_k mean(B_k)`` over ``ks`` with a paired bootstrap CI (prompts
    resampled jointly): how much worse A is than B over a range of prompt lengths."""
    sa, sb = a[:, list(ks)].sum(1), b[:, list(ks)].sum(1)  # per-prompt totals

    def ratio(x, y, axis=-1):
        return np.mean(x, axis=axis) / np.mean(y, axis=axis)

    return bootstrap_ci((sa, sb), ratio, paired=True, n_resamples=n_resamples, seed=seed)


def gap_closed(
    model: np.ndarray,
    worse: np.ndarray,
    better: np.ndarray,
    ks: Sequence[int],
    *,
    n_resamples: int,
    seed: int,
):
    """Fraction of the gap from ``worse`` to ``better`` that the model closes, pooled
    over ``ks``: ``(W − M) / (W − B)`` of summed mean errors; 1 = as good as ``better``,
    0 = as bad as ``worse``. Paired bootstrap CI over prompts."""
    cols = list(ks)
    m, w, b = (x[:, cols].sum(1) for x in (model, worse, better))

    def frac(m_, w_, b_, axis=-1):
        wm = np.mean(w_, axis=axis)
        return (wm - np.mean(m_, axis=axis)) / (wm - np.mean(b_, axis=axis))

    return bootstrap_ci((m, w, b), frac, paired=True, n_resamples=n_resamples, seed=seed)
