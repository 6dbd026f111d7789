"""The ``unlearning`` study's summary: per-seed results into metrics with 95 % intervals
over seeds (:func:`fmlab.stats.over_seeds`), the claims' metrics, and what the figures
read. Metrics of a split carry its tag (``_f10`` for forget 10 %); the claims' metrics
are on the largest split and carry none."""

from __future__ import annotations

from typing import Any

import numpy as np

from fmlab.stats import over_seeds
from fmlab.stats.seeds import CI_HIGH, CI_LOW
from fmlab.studies.unlearning import metrics as M

ATTACKS = ("mia_loss", "mia_min_k", "mia_zlib")


def tag(pct: float) -> str:
    return f"f{pct:g}"


def first_reaching(rows: list[dict], level: float) -> dict:
    """The first trajectory point whose forget quality is >= ``level`` (else the last)."""
    return next((r for r in rows if r.get("fq", 0.0) >= level), rows[-1])


def frontier(rows: list[dict]) -> float:
    u = np.array([r["utility"] for r in rows])
    return M.frontier_area(u, np.array([r["log10_fq"] for r in rows]), u_max=float(u[0]))


def summarise(cfg: Any, results: list[dict]) -> dict[str, Any]:
    m: dict[str, Any] = {}

    def seeds(name: str, values: list) -> None:
        m.update(over_seeds(name, [None if v is None else float(v) for v in values]))

    methods = list(cfg.methods)
    biggest = max(cfg.forget_pcts)
    for pct in cfg.forget_pcts:
        t = tag(pct)
        splits = [r["splits"][pct] for r in results]
        first = methods[0]
        seeds(f"utility_target_{t}", [s["trajectories"][first][0]["utility"] for s in splits])
        seeds(f"log10_fq_target_{t}", [s["trajectories"][first][0]["log10_fq"] for s in splits])
        seeds(f"utility_retrain_{t}", [s["retrain"]["utility"] for s in splits])
        seeds(f"forget_acc_target_{t}", [s["trajectories"][first][0]["forget_acc"] for s in splits])
        seeds(f"forget_acc_retrain_{t}", [s["retrain"]["forget_acc"] for s in splits])
        for meth in methods:
            rows = [s["trajectories"][meth] for s in splits]
            seeds(f"utility_{meth}_{t}", [r[-1]["utility"] for r in rows])
            seeds(f"log10_fq_{meth}_{t}", [r[-1]["log10_fq"] for r in rows])
            seeds(f"best_log10_fq_{meth}_{t}", [max(x["log10_fq"] for x in r) for r in rows])
            seeds(f"forget_acc_{meth}_{t}", [r[-1]["forget_acc"] for r in rows])
            seeds(f"frontier_{meth}_{t}", [frontier(r) for r in rows])
            at = [first_reaching(r, cfg.fq_level) for r in rows]
            seeds(f"utility_at_fq_{meth}_{t}", [a["utility"] for a in at])
            m[f"fq_reached_{meth}_{t}"] = float(
                np.mean([a.get("fq", 0) >= cfg.fq_level for a in at])
            )
        for name in ["target", "retrain", *methods]:
            for attack in ATTACKS:
                seeds(f"{attack}_{name}_{t}", [s["mia"][name][attack] for s in splits])

    t = tag(biggest)
    splits = [r["splits"][biggest] for r in results]
    if "ga" in methods:
        at = [first_reaching(s["trajectories"]["ga"], cfg.fq_level) for s in splits]
        seeds(
            "ga_utility_gap_at_fq",
            [s["retrain"]["utility"] - a["utility"] for s, a in zip(splits, at, strict=True)],
        )
        seeds("ga_step_at_fq", [a["step"] for a in at])
        m["ga_fq_reached"] = m[f"fq_reached_ga_{t}"]
    for a, b in (("npo", "ga"), ("npo_rt", "grad_diff")):
        if a in methods and b in methods:
            seeds(
                f"{a}_minus_{b}_frontier",
                [frontier(s["trajectories"][a]) - frontier(s["trajectories"][b]) for s in splits],
            )
    relearn = [s["relearn"] for s in splits]
    for name in ["retrain", *methods]:
        for key in ("acc_before", "acc_after", "prob_before", "prob_after"):
            seeds(f"relearn_{key}_{name}", [r[name][key] for r in relearn])
    for meth in methods:
        seeds(
            f"relearn_gap_{meth}",
            [r[meth]["acc_after"] - r["retrain"]["acc_after"] for r in relearn],
        )
    # the claim's mean runs over the methods that unlearned (reached the forget-quality level
    # in that seed): relearning cannot "recover" facts a method never removed
    gaps, counted = [], []
    for sp, r in zip(splits, relearn, strict=True):
        done = [
            x
            for x in methods
            if first_reaching(sp["trajectories"][x], cfg.fq_level).get("fq", 0.0) >= cfg.fq_level
        ] or methods
        gaps.append(np.mean([r[x]["acc_after"] for x in done]) - r["retrain"]["acc_after"])
        counted.append(len(done))
    seeds("relearn_gap", gaps)
    m["relearn_methods_counted_min"] = min(counted)
    m["relearn_steps"] = cfg.relearn_steps
    for name in ["target", "retrain", *methods]:
        for attack in ATTACKS:
            for suffix in ("", CI_LOW, CI_HIGH):
                key = f"{attack}_{name}_{t}{suffix}"
                if key in m:
                    m[f"{attack}_{name}{suffix}"] = m[key]
    lo, hi = m.get(f"mia_loss_retrain{CI_LOW}"), m.get(f"mia_loss_retrain{CI_HIGH}")
    if lo is not None and hi is not None:
        m["mia_loss_retrain_ci_off_half"] = max(0.0, lo - 0.5, 0.5 - hi)
    m["n_seeds"] = len(results)
    return {"metrics": m, "artifacts": _artifacts(cfg, results)}


def _artifacts(cfg: Any, results: list[dict]) -> dict[str, Any]:
    keep = ("step", "utility", "log10_fq", "fq", "forget_acc", "forget_prob", "forget_tr")
    out: dict[str, Any] = {"fq_level": cfg.fq_level, "methods": list(cfg.methods), "splits": {}}
    for pct in cfg.forget_pcts:
        per_seed = []
        for r in results:
            s = r["splits"][pct]
            per_seed.append(
                {
                    "seed": r["seed"],
                    "retrain": {k: s["retrain"].get(k) for k in keep if k != "step"},
                    "trajectories": {
                        meth: [{k: row.get(k) for k in keep} for row in rows]
                        for meth, rows in s["trajectories"].items()
                    },
                    "mia": s["mia"],
                    "relearn": s.get("relearn"),
                }
            )
        out["splits"][tag(pct)] = per_seed
    return out
