"""Summary numbers of the ``induction-heads`` study: transitions, windows, seed statistics.

For each trained model: the changepoints (:func:`fmlab.fit.fit_changepoint`) of its loss
on repeated tokens, of its best prefix-matching score and of its ICL score; the window
in which its induction head forms (10 % → 90 % of a sigmoid fit of the best
prefix-matching score, :class:`fmlab.fit.TransitionFit`, at least one evaluation either
side of the midpoint); and the shares of its ICL-score gain made before, inside and after
that window, with how many times faster per step it was made inside than outside.
Per depth, every number is then reported over seeds as a mean with a 95 % t-interval,
and as the minimum and maximum, on which the "in every seed" claims are decided.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fmlab.fit import TransitionFit, fit_changepoint
from fmlab.stats import over_seeds
from fmlab.store import Run
from fmlab.studies.induction_heads.train import Probes, Trained


def _changepoint(steps: np.ndarray, values: np.ndarray) -> float | None:
    try:
        return fit_changepoint(steps, values).t
    except ValueError:  # too few evaluations
        return None


def _gap(a: float | None, b: float | None, total: float) -> float | None:
    """Distance between two changepoints as a fraction of training."""
    return abs(a - b) / total if a is not None and b is not None else None


def formation_window(
    steps: np.ndarray, prefix: np.ndarray, eval_every: int
) -> tuple[float, float] | None:
    """Steps between which the best prefix-matching score makes 10 % → 90 % of its rise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = TransitionFit(log_x=False).fit(steps, prefix)
    except (ValueError, RuntimeError, OverflowError):  # flat or degenerate curve
        return None
    if not np.isfinite(fit.t0_) or fit.hi_ <= fit.lo_:  # no rise: no window
        return None
    lo = max(min(fit.onset_, fit.t0_ - eval_every), float(steps[0]))
    hi = min(max(fit.end_, fit.t0_ + eval_every), float(steps[-1]))
    return (lo, hi) if lo < hi else None


def per_model(t: Trained, eval_every: int) -> dict[str, Any]:
    """The numbers of one model (None where a fit was impossible)."""
    h = t.history
    steps = np.asarray(h.steps, dtype=float)
    loss, prefix, icl = h.array("loss_repeated"), h.array("prefix_max"), h.array("icl_score")
    cp_loss, cp_prefix = _changepoint(steps, loss), _changepoint(steps, prefix)
    cp_icl = _changepoint(steps, icl)
    out: dict[str, Any] = {
        "prefix_max": float(t.prefix_final.max()),
        "loss_repeated_init": float(loss[0]),
        "loss_repeated_final": float(loss[-1]),
        "loss_other_final": float(h.array("loss_other")[-1]),
        "icl_score_init": float(icl[0]),
        "icl_score_final": float(icl[-1]),
        "phase_change_step": cp_loss,
        "prefix_change_step": cp_prefix,
        "icl_change_step": cp_icl,
        "changepoint_gap_frac": _gap(cp_loss, cp_prefix, steps[-1]),
        "icl_changepoint_gap_frac": _gap(cp_icl, cp_prefix, steps[-1]),
        "train_cpu_s": t.cpu_s,
    }
    window = formation_window(steps, prefix, eval_every)
    if window is not None:
        before, after = np.interp(window, steps, icl)
        out |= {
            "window_start": window[0],
            "window_end": window[1],
            "icl_score_before": float(before),
            "icl_score_after": float(after),
        } | gain_shares(icl[0], before, after, icl[-1], window, (steps[0], steps[-1]))
    else:
        out |= dict.fromkeys(("window_start", "window_end", "icl_score_before", "icl_score_after"))
        out |= dict.fromkeys(GAIN_KEYS)
    return out


GAIN_KEYS = (
    "icl_gain_before_window",
    "icl_gain_in_window",
    "icl_gain_after_window",
    "icl_gain_rate_ratio",
)


def gain_shares(start, before, after, end, window, span) -> dict[str, float | None]:
    """Shares of the ICL-score gain (``end - start``, a fall) made before, inside and after
    the window (they sum to 1), and how many times faster per step it was made inside the
    window than outside it; None if the score did not fall."""
    total = end - start
    if not total < 0:
        return dict.fromkeys(GAIN_KEYS)
    shares = [(before - start) / total, (after - before) / total, (end - after) / total]
    inside = (window[1] - window[0]) / (span[1] - span[0])
    outside_rate = (shares[0] + shares[2]) / (1 - inside) if inside < 1 else float("nan")
    ratio = shares[1] / inside / outside_rate if outside_rate > 0 else None
    return dict(zip(GAIN_KEYS, [float(x) for x in shares] + [ratio], strict=True))


# per-model numbers reported over seeds; the claimed ones also by their min and max
SEED_KEYS = (
    "prefix_max",
    "loss_repeated_init",
    "loss_repeated_final",
    "loss_other_final",
    "icl_score_init",
    "icl_score_before",
    "icl_score_after",
    "icl_score_final",
    "phase_change_step",
    "prefix_change_step",
    "icl_change_step",
    "changepoint_gap_frac",
    "icl_changepoint_gap_frac",
    "icl_gain_before_window",
    "icl_gain_in_window",
    "icl_gain_after_window",
    "icl_gain_rate_ratio",
)  # (timings go to artifacts/models.json only: metrics must be reproducible)
EXTREMES = (
    "prefix_max",
    "changepoint_gap_frac",
    "icl_changepoint_gap_frac",
    "icl_gain_in_window",
    "icl_gap_1l_vs_2l",
)


def summarise(cfg: Any, trained: list[Trained], probes: Probes, run: Run) -> dict[str, Any]:
    rows = {(t.n_layers, t.seed): per_model(t, cfg.train.eval_every) for t in trained}
    metrics: dict[str, Any] = {
        "n_seeds": len(cfg.seeds),
        "icl_early_end": probes.early_end,
        "icl_late_start": probes.late_start,
        "uniform_prefix_score": uniform_prefix_score(probes.half, 2 * probes.half),
    }
    for n_layers in sorted(cfg.layers):
        mine = [rows[(n_layers, s)] for s in cfg.seeds]
        for key in SEED_KEYS:
            values = [r[key] for r in mine]
            metrics |= over_seeds(f"{key}_{n_layers}l", values, extremes=key in EXTREMES)
    gaps = [rows[(1, s)]["icl_score_final"] - rows[(2, s)]["icl_score_final"] for s in cfg.seeds]
    metrics |= over_seeds("icl_gap_1l_vs_2l", gaps, extremes=True)
    run.save_json(
        "models",
        [
            {
                "n_layers": t.n_layers,
                "seed": t.seed,
                **rows[(t.n_layers, t.seed)],
                "prefix_by_head": t.prefix_final.tolist(),
            }
            for t in trained
        ],
    )
    return metrics


def uniform_prefix_score(period: int, length: int) -> float:
    """The prefix-matching score of a head attending uniformly to all earlier tokens:
    the mean of 1/(q+1) over the scored queries q = period..length-1."""
    return float(np.mean(1.0 / (np.arange(period, length) + 1)))
