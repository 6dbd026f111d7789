"""From the seeds' results to the summary metrics the claims read (each over seeds with a
95 % t-interval) and the artifact the figures draw.

Frontier at matched KL: a method's frontier is the upper envelope of its (KL, true reward)
evaluations over every β and step, ``f(k) = max{reward : KL <= k}`` (step 0, the
reference itself, is on every method's). Two methods are compared on a grid of KL from 0
to the smaller of their largest measured KLs (where both were measured), by the mean of
``f_a(k) - f_b(k)`` over the grid: > 0 means a's frontier lies above b's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fmlab.stats import over_seeds

GRID = 41


def envelope(points: list[tuple[float, float]], grid: np.ndarray) -> np.ndarray:
    """``f(k) = max{reward : KL <= k}`` at each grid value (NaN below every point)."""
    pts = sorted(points)
    kl = np.array([p[0] for p in pts])
    best = np.maximum.accumulate(np.array([p[1] for p in pts]))
    i = np.searchsorted(kl, grid, side="right") - 1
    return np.where(i >= 0, best[np.clip(i, 0, None)], np.nan)


def points_of(frontier: dict[str, list[dict]]) -> list[tuple[float, float]]:
    return [(max(r["kl"], 0.0), r["reward"]) for traj in frontier.values() for r in traj]


def frontier_gap(fa: dict, fb: dict) -> float:
    pa, pb = points_of(fa), points_of(fb)
    top = min(max(p[0] for p in pa), max(p[0] for p in pb))
    grid = np.linspace(0.0, top, GRID)
    return float(np.nanmean(envelope(pa, grid) - envelope(pb, grid)))


def at_middle(traj: list[dict]) -> dict:
    half = traj[-1]["step"] / 2
    return min(traj, key=lambda r: abs(r["step"] - half))


def summarise(cfg: Any, results: list[dict[str, Any]]) -> dict[str, Any]:
    m: dict[str, Any] = {}

    def seeds(name: str, values: list) -> None:
        m.update(over_seeds(name, values))

    main = f"{cfg.beta_main:g}"
    for meth in cfg.methods:
        for key in ("kl", "reward", "win_rate"):
            seeds(f"{key}_{meth}", [r["frontier"][meth][main][-1][key] for r in results])
    if "dpo" in cfg.methods and "rl" in cfg.methods:
        seeds(
            "dpo_minus_rl_frontier",
            [frontier_gap(r["frontier"]["dpo"], r["frontier"]["rl"]) for r in results],
        )
    if "ipo" in cfg.methods and "rl" in cfg.methods:
        seeds(
            "ipo_minus_rl_frontier",
            [frontier_gap(r["frontier"]["ipo"], r["frontier"]["rl"]) for r in results],
        )

    for meth in cfg.det_methods:
        trajs = [r["deterministic"][meth] for r in results]
        seeds(f"det_kl_end_{meth}", [t[-1]["kl"] for t in trajs])
        seeds(f"det_kl_mid_{meth}", [at_middle(t)["kl"] for t in trajs])
        seeds(f"det_kl_growth_{meth}", [t[-1]["kl"] - at_middle(t)["kl"] for t in trajs])
        seeds(f"det_reward_end_{meth}", [t[-1]["reward"] for t in trajs])
    if {"dpo", "ipo"} <= set(cfg.det_methods):
        growth = [
            (r["deterministic"]["dpo"][-1]["kl"] - at_middle(r["deterministic"]["dpo"])["kl"])
            - (r["deterministic"]["ipo"][-1]["kl"] - at_middle(r["deterministic"]["ipo"])["kl"])
            for r in results
        ]
        seeds("det_dpo_minus_ipo_kl_growth", growth)
        seeds(
            "det_dpo_minus_ipo_kl_end",
            [r["deterministic"]["dpo"][-1]["kl"] - r["deterministic"]["ipo"][-1]["kl"]
             for r in results],
        )  # fmt: skip

    seeds("ece_base", [r["calibration"]["base"]["ece"] for r in results])
    for meth in cfg.methods:
        seeds(f"ece_{meth}", [r["calibration"][meth]["ece"] for r in results])
        seeds(
            f"ece_gain_{meth}",
            [r["calibration"][meth]["ece"] - r["calibration"]["base"]["ece"] for r in results],
        )
        for key in ("changed", "shifted", "marginal", "good_among_changed", "good_among_unchanged"):
            seeds(f"top1_{key}_frac_{meth}", [r["token_shift"][meth][key] for r in results])
        for key in ("entropy_changed", "entropy_unchanged"):
            seeds(f"top1_{key}_{meth}", [r["token_shift"][meth][key] for r in results])
    seeds("bt_first_rate", [r["pairs"]["first_rate"] for r in results])
    seeds("bt_expected_first_rate", [r["pairs"]["expected_first_rate"] for r in results])
    seeds("ref_reward", [r["pairs"]["ref_reward"] for r in results])
    artifacts = {
        "methods": list(cfg.methods),
        "det_methods": list(cfg.det_methods),
        "betas": [f"{b:g}" for b in cfg.betas],
        "beta_main": main,
        "det_beta": cfg.det_beta,
        "seeds": results,
    }
    return {"metrics": m, "artifacts": artifacts}
