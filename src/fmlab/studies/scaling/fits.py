"""Fitting the ``scaling`` study's grid of runs: approach 3 (the Chinchilla law), approach 2
(IsoFLOP parabolas) and the paired bootstrap of the difference of their exponents ``a``.

``cfg`` is the study's ``ScalingConfig`` (typed ``Any`` here: the config module imports this
one).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from fmlab.fit import ApproachGap, ChinchillaFit, IsoFlopFit
from fmlab.fit.quality import log_fit_quality
from fmlab.stats.seeds import CI_HIGH, CI_LOW

COARSE_GRID = {
    "a": (2.0, 8.0),
    "b": (2.0, 8.0),
    "e": (0.0, 1.0),
    "alpha": (0.3, 0.8),
    "beta": (0.3, 0.8),
}


def runs_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (N, D) run: width, N, D, budget, FLOPs 6ND and the held-out losses."""
    rows = [
        {
            "width": r["width"],
            "seed": r["seed"],
            "N": r["n_params"],
            "N_total": r["n_params_total"],
            "D": f["tokens"],
            "steps": f["steps"],
            "budget": f["budget"],
            "C": 6.0 * r["n_params"] * f["tokens"],
            "loss": f["eval_loss"],
            "loss_sampled": f["eval_loss_sampled"],
            "excess_loss": f["excess_loss"],
        }
        for r in results
        for f in r["finals"]
    ]
    return pd.DataFrame(rows).sort_values(["width", "seed", "D"], ignore_index=True)


def neighbour_gap(table: pd.DataFrame) -> float:
    """Median |Δ log L| between runs of adjacent size on one IsoFLOP budget (and seed)."""
    gaps: list[float] = []
    for _, g in table.groupby(["budget", "seed"]):
        gaps += list(np.abs(np.diff(np.log(g.sort_values("N")["loss"].to_numpy()))))
    return float(np.median(gaps)) if gaps else float("nan")


def seed_sd(table: pd.DataFrame) -> float:
    """Pooled seed-to-seed standard deviation of log L over the (N, D) points (NaN: 1 seed)."""
    groups = [np.log(g["loss"].to_numpy()) for _, g in table.groupby(["width", "D"])]
    dof = sum(len(x) - 1 for x in groups)
    if dof == 0:
        return float("nan")
    return float(np.sqrt(sum(((x - x.mean()) ** 2).sum() for x in groups) / dof))


def fit_law(cfg: Any, table: pd.DataFrame, h: float) -> tuple[ChinchillaFit, dict]:
    """Approach 3 on every run; its parameters, CIs, E against ``h`` and the fit quality."""
    grid = COARSE_GRID if cfg.fit_starts == "coarse" else None
    law = ChinchillaFit(
        delta=cfg.huber_delta, grid=grid, n_bootstrap=cfg.n_bootstrap, seed=cfg.seeds[0]
    ).fit(table.N, table.D, table.loss)
    m: dict[str, Any] = {}
    for name in ("E", "A", "B", "alpha", "beta", "a", "b"):
        m[name] = getattr(law, f"{name}_")
        if hasattr(law, "ci_"):
            m[f"{name}{CI_LOW}"], m[f"{name}{CI_HIGH}"] = law.ci_[name].low, law.ci_[name].high
    m["E_true"] = h
    m["E_rel_error"] = (law.E_ - h) / h
    m["E_abs_rel_error"] = abs(law.E_ - h) / h
    if hasattr(law, "ci_"):
        m["E_true_in_ci"] = float(law.ci_["E"].contains(h))
        m["a_ci_contains_0.5"] = float(law.ci_["a"].contains(0.5))
        m["a_ci_contains_0.73"] = float(law.ci_["a"].contains(0.73))
    quality = log_fit_quality(table.loss, law.predict(table.N, table.D))
    m.update({f"law_{k}": v for k, v in quality.as_dict().items()})
    m["neighbour_gap_log"] = neighbour_gap(table)
    m["law_rmse_to_gap"] = quality.rmse / m["neighbour_gap_log"]
    m["seed_sd_log"] = seed_sd(table)
    m["law_rmse_to_seed_sd"] = quality.rmse / m["seed_sd_log"]
    m["law_converged"] = float(law.converged_)
    return law, m


def fit_isoflop(cfg: Any, table: pd.DataFrame) -> tuple[IsoFlopFit | None, dict]:
    """Approach 2 on the budgets whose profile has its minimum inside the sampled sizes.

    A vertex outside them is the parabola's extrapolation, not a measured minimum (Hoffmann
    et al. read each optimum off a profile that brackets it); such budgets are dropped and
    the rest refit. ``isoflop_a_all`` keeps the fit over every convex budget for comparison.
    """
    m: dict[str, Any] = {}
    try:
        iso = IsoFlopFit(n_bootstrap=cfg.n_bootstrap, seed=cfg.seeds[0])
        iso.fit(table.N, table.loss, table.budget)
        m["isoflop_a_all"] = iso.a_
        inside = iso.optima_.loc[~iso.optima_["extrapolated"], "C"]
        if len(inside) < len(iso.optima_):
            sub = table[table.budget.isin(inside)]
            iso = IsoFlopFit(n_bootstrap=cfg.n_bootstrap, seed=cfg.seeds[0])
            iso.fit(sub.N, sub.loss, sub.budget)
    except ValueError as e:  # fewer than two budgets with a minimum inside the sizes
        warnings.warn(f"IsoFLOP fit impossible: {e}", UserWarning, stacklevel=2)
        return None, m
    m["isoflop_a"], m["isoflop_b"] = iso.a_, iso.b_
    if hasattr(iso, "ci_"):
        m[f"isoflop_a{CI_LOW}"], m[f"isoflop_a{CI_HIGH}"] = iso.ci_["a"].low, iso.ci_["a"].high
    m["isoflop_budgets"] = len(iso.optima_)
    return iso, m


def approach_gap(cfg: Any, table: pd.DataFrame, law, iso) -> dict[str, Any]:
    """a(3) − a(2) with its paired bootstrap CI (:class:`ApproachGap`): each draw is one
    data set on which both approaches are refit. With several seeds the draws keep the
    design and add seed-to-seed noise (``resample="seeds"``); resampling the runs of a
    budget with 3-5 sizes also resamples its sizes and widens the interval (docs/scaling.md),
    so runs are resampled only with one seed."""
    resample = "seeds" if len(cfg.seeds) >= 2 else "runs"
    gap = ApproachGap(n_bootstrap=cfg.n_bootstrap, seed=cfg.seeds[0], resample=resample)
    gap.fit(table.N, table.D, table.loss, table.budget, law=law, iso=iso)
    lo, hi = gap.ci_.low, gap.ci_.high
    if not (np.isfinite(lo) and np.isfinite(hi)):  # no draw had both exponents
        return {"a_approach_diff": gap.estimate_, "a_approach_diff_failed": gap.failed_}
    return {
        "a_approach_diff": gap.estimate_,
        f"a_approach_diff{CI_LOW}": lo,
        f"a_approach_diff{CI_HIGH}": hi,
        "a_approach_diff_ci_contains_0": float(lo <= 0 <= hi),
        "a_approach_diff_ci_max_abs": max(abs(lo), abs(hi)),
        "a_approach_diff_failed": gap.failed_,
        "a_approach_corr": gap.correlation_,
    }


def fit_grid(cfg: Any, table: pd.DataFrame, h: float) -> tuple[dict, dict]:
    """Both approaches; summary metrics (with every fit warning) and the fits.json extras."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        law, m = fit_law(cfg, table, h)
        iso, iso_metrics = fit_isoflop(cfg, table)
    m.update(iso_metrics)
    # None when too few budgets bracket an optimum (smoke): reported, so a claim says why
    m["a_approach_gap"] = abs(law.a_ - iso.a_) if iso is not None else None
    m |= dict.fromkeys(("a_approach_diff_ci_contains_0", "a_approach_diff_ci_max_abs"))
    if iso is not None and cfg.n_bootstrap >= 2:
        m.update(approach_gap(cfg, table, law, iso))
    m["fit_warnings"] = list(dict.fromkeys(str(w.message) for w in caught))
    extras = {
        "chinchilla": law.summary(),
        "isoflop": None if iso is None else iso.optima_.to_dict(orient="records"),
        # bootstrap draws of the allocation (G, a, b): the band of the frontier figure
        "bootstrap": law.bootstrap_[["G", "a", "b"]].to_dict(orient="list")
        if hasattr(law, "bootstrap_")
        else None,
    }
    return m, extras
