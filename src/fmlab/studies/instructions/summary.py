"""From per-member correctness to the study's metrics: accuracies per set and k with
CIs over seeds, the fitted trend of held-out accuracy against log2 k, and the two paired
gaps the claims are judged on."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fmlab.stats import bootstrap_ci
from fmlab.stats.seeds import over_seeds
from fmlab.studies.instructions.evaluate import SETS


def slope(ks: list[int], acc: list[float]) -> float:
    """Least-squares slope of accuracy against log2 k over the k ≥ 1 points."""
    x = np.log2(np.asarray(ks, dtype=float))
    y = np.asarray(acc, dtype=float)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def summarise(cfg, members, correct: dict) -> dict[str, Any]:
    """``metrics`` for the summary and ``artifacts`` for the figures."""
    acc: dict[str, dict[tuple[int, int], float]] = {kind: {} for kind in SETS}
    for kind in SETS:
        for m, c in zip(members, correct[kind], strict=True):
            if c is not None:
                acc[kind][(m.seed, m.k)] = float(c.float().mean())
    seeds, ks = list(cfg.seeds), list(cfg.ks)
    pos = [k for k in ks if k > 0]
    kmax = max(ks)
    metrics: dict[str, Any] = {}
    for kind in SETS:
        for k in ks:
            if (seeds[0], k) in acc[kind]:
                metrics |= over_seeds(f"{kind}_acc_k{k}", [acc[kind][(s, k)] for s in seeds])
    slopes = [slope(pos, [acc["heldout"][(s, k)] for k in pos]) for s in seeds]
    metrics |= over_seeds("heldout_slope_log2k", slopes)
    if len(seeds) > 1:  # the brief's bootstrap over seeds, beside the t-interval
        boot = bootstrap_ci(np.asarray(slopes), n_resamples=4000, method="percentile")
        metrics["heldout_slope_log2k_boot_low"] = boot.low
        metrics["heldout_slope_log2k_boot_high"] = boot.high
    gap_single = [acc["heldout"][(s, kmax)] - acc["heldout"][(s, 1)] for s in seeds]
    metrics |= over_seeds("heldout_gap_kmax_vs_k1", gap_single)
    gap_base = [acc["reversed"][(s, kmax)] - acc["reversed"][(s, 0)] for s in seeds]
    metrics |= over_seeds("reversed_gap_tuned_vs_base", gap_base)
    gap_base_held = [acc["heldout"][(s, kmax)] - acc["heldout"][(s, 0)] for s in seeds]
    metrics |= over_seeds("heldout_gap_tuned_vs_base", gap_base_held)
    metrics["k_max"] = kmax
    artifacts = {
        "ks": ks,
        "seeds": seeds,
        "acc": {
            kind: {str(k): [acc[kind].get((s, k), math.nan) for s in seeds] for k in ks}
            for kind in SETS
        },
        "slopes": slopes,
    }
    return {"metrics": metrics, "artifacts": artifacts}
