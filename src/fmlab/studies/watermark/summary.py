"""The ``watermark`` study's summary: per-seed results pooled into metrics with 95 %
intervals.

* Over seeds (each seed trains its own model and draws its own texts and keys): rates,
  z-scores, KL and cross-entropies, with :func:`fmlab.stats.over_seeds` (t-interval).
* False-positive rates pool every (text, key) pair of every seed. Given its text, a
  text's flags over independent keys are Binomial(keys, q_text); texts are clusters, so
  the interval is Clopper–Pearson on the effective sample size ``n / deff`` (Korn &
  Graubard 1998), ``deff`` = cluster-robust over binomial variance (at least 1).
* Entropy bins pool the tokens of every seed's main KGW texts into equal-count bins of
  the model's spike entropy; per bin the mean of (green − bound) has a cluster-robust
  (text) standard error, and a one-sided test asks whether it is below 0 (Theorem 4.2
  violated), Bonferroni-adjusted over bins.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from fmlab.stats import over_seeds
from fmlab.stats.seeds import CI_HIGH, CI_LOW
from fmlab.studies.watermark.measure import kgw_name


def fpr_interval(fp_per_text: list[list[int]], keys: int, conf: float = 0.95) -> dict[str, float]:
    """Pooled false-positive rate of ``keys`` keys per text, with its cluster-aware
    Clopper–Pearson interval (see the module docstring)."""
    fp = np.concatenate([np.asarray(f, dtype=float) for f in fp_per_text])
    N, total = len(fp), len(fp) * keys
    rate = fp.sum() / total
    deff = 1.0
    if fp.sum() > 0 and N > 1:
        var_cluster = np.var(fp / keys, ddof=1) / N
        deff = max(1.0, var_cluster / (rate * (1 - rate) / total))
    n_eff = total / deff
    x = rate * n_eff
    a = 1 - conf
    low = 0.0 if x == 0 else float(stats.beta.ppf(a / 2, x, n_eff - x + 1))
    high = 1.0 if x >= n_eff else float(stats.beta.ppf(1 - a / 2, x + 1, n_eff - x))
    return {"rate": float(rate), "low": low, "high": high, "pairs": total, "deff": deff}


def _cluster_mean(values: np.ndarray, mask: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean of ``values`` over ``mask`` (texts × tokens) and each text's influence, whose
    root sum of squares is the cluster-robust standard error."""
    n_i = mask.sum(1)
    s_i = np.where(mask, values, 0.0).sum(1)
    total = n_i.sum()
    mean = s_i.sum() / total
    return float(mean), (s_i - mean * n_i) / total


def entropy_bins(results: list[dict], n_bins: int, gamma: float) -> dict[str, Any]:
    """Theorem 4.2 per spike-entropy bin (pooled over seeds; clusters = texts)."""
    spike = np.concatenate([r["bins"]["spike"] for r in results])
    bound = np.concatenate([r["bins"]["bound"] for r in results])
    green = np.concatenate([r["bins"]["green"] for r in results])
    p_green = np.concatenate([r["bins"]["p_green"] for r in results])
    edges = np.unique(np.quantile(spike, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, spike, side="right") - 1, 0, len(edges) - 2)
    rows, influence = [], []
    for b in range(len(edges) - 1):
        mask = which == b
        gap, infl = _cluster_mean(green - bound, mask)
        se = float(np.sqrt((infl**2).sum()))
        excess, infl_x = _cluster_mean(green - gamma, mask)
        influence.append(infl_x)
        rows.append(
            {
                "spike_low": float(edges[b]),
                "spike_high": float(edges[b + 1]),
                "spike_mean": _cluster_mean(spike, mask)[0],
                "tokens": int(mask.sum()),
                "green": _cluster_mean(green, mask)[0],
                "p_green": _cluster_mean(p_green, mask)[0],
                "bound": _cluster_mean(bound, mask)[0],
                "gap": gap,
                "gap_se": se,
                "p_below": float(stats.norm.cdf(gap / se)) if se > 0 else float(gap < 0),
                "excess": excess,
            }
        )
    k = len(rows)
    for row in rows:
        row["p_below_adj"] = min(1.0, row["p_below"] * k)
    diff = rows[-1]["excess"] - rows[0]["excess"]
    se_diff = float(np.sqrt(((influence[-1] - influence[0]) ** 2).sum()))
    z95 = stats.norm.ppf(0.975)
    return {
        "rows": rows,
        "bound_p_adj_min": min(r["p_below_adj"] for r in rows),
        "bound_gap_min": min(r["gap"] for r in rows),
        "green_excess_gain_entropy": diff,
        f"green_excess_gain_entropy{CI_LOW}": diff - z95 * se_diff,
        f"green_excess_gain_entropy{CI_HIGH}": diff + z95 * se_diff,
    }


def substitution_check(results: list[dict], name: str, eps: float, length: int, gamma: float):
    """Measured green counts after substituting ``eps`` against their exact expectation:
    the mean deviation in standard errors, and the green-excess retention both ways."""
    rows = [r["attacks"][name]["substitution"] for r in results]
    meas = np.concatenate([np.asarray(r[eps]["green_measured"]) for r in rows])
    expd = np.concatenate([np.asarray(r[eps]["green_expected"]) for r in rows])
    base = (
        np.concatenate([np.asarray(r[0.0]["green_measured"]) for r in rows])
        if all(0.0 in r for r in rows)
        else None
    )
    d = meas - expd
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    out = {"dev_mean": float(d.mean()), "dev_z": float(d.mean() / se) if se > 0 else 0.0}
    if base is not None:
        excess0 = base.mean() - gamma * length
        out["retention"] = float((meas.mean() - gamma * length) / excess0)
        out["retention_expected"] = float((expd.mean() - gamma * length) / excess0)
    return out


def _pct(x: float) -> str:
    return f"{round(100 * x):d}"


def summarise(cfg: Any, results: list[dict]) -> dict[str, Any]:
    m: dict[str, Any] = {}
    main = kgw_name(cfg.delta)
    T0, T1 = cfg.lengths[0], cfg.lengths[-1]
    d0, d1 = min(cfg.deltas), max(cfg.deltas)

    def seeds(name: str, values: list) -> None:
        m.update(over_seeds(name, values))

    curves = [r["curves"] for r in results]
    for arm in curves[0]:
        for stat in ("tpr_z4", "tpr_p", "z_mean"):
            seeds(f"{stat}_{arm}", [c[arm][T1][stat] for c in curves])
    seeds("tpr_gain_T", [c[main][T1]["tpr_z4"] - c[main][T0]["tpr_z4"] for c in curves])
    seeds(
        "tpr_gain_delta",
        [c[kgw_name(d1)][T1]["tpr_z4"] - c[kgw_name(d0)][T1]["tpr_z4"] for c in curves],
    )
    # strength at every step of the grids: the smallest rise of the mean z-score
    steps_T = [np.diff([c[main][T]["z_mean"] for T in cfg.lengths]).min() for c in curves]
    seeds("z_step_T_min", [float(x) for x in steps_T])
    deltas = sorted(set(cfg.deltas))
    steps_d = [np.diff([c[kgw_name(d)][T1]["z_mean"] for d in deltas]).min() for c in curves]
    seeds("z_step_delta_min", [float(x) for x in steps_d])
    quality = [r["quality"] for r in results]
    for arm in quality[0]:
        for stat in quality[0][arm]:
            seeds(f"{stat}_{arm}", [q[arm][stat] for q in quality])
    if "ce_true_sampled" in quality[0]["none"]:
        for arm in curves[0]:
            seeds(
                f"ce_cost_{arm}",
                [q[arm]["ce_true_sampled"] - q["none"]["ce_true_sampled"] for q in quality],
            )
    m["kl_kgw"] = m[f"kl_{main}"]
    for suffix in (CI_LOW, CI_HIGH):
        if f"kl_{main}{suffix}" in m:
            m[f"kl_kgw{suffix}"] = m[f"kl_{main}{suffix}"]

    for source in results[0]["null"]:
        for det, first in results[0]["null"][source].items():
            for rule in ("fp_z4", "fp_p", "fp_1e-3"):
                ci = fpr_interval([r["null"][source][det][rule] for r in results], first["keys"])
                name = f"fpr{rule[2:]}_{det}_{source}"
                m[name], m[f"{name}{CI_LOW}"], m[f"{name}{CI_HIGH}"] = (
                    ci["rate"],
                    ci["low"],
                    ci["high"],
                )
                m[f"{name}_pairs"] = ci["pairs"]
            seeds(f"null_z_sd_{det}_{source}", [r["null"][source][det]["z_sd"] for r in results])
            if "z_sd_exact" in first:
                values = [r["null"][source][det]["z_sd_exact"] for r in results]
                seeds(f"null_z_sd_exact_{det}_{source}", values)
    for source in results[0]["null"]:
        m[f"fpr_z4_{source}_lower95"] = m[f"fpr_z4_kgw_{source}{CI_LOW}"]

    for scheme in results[0]["gof"]:
        rows = [r["gof"][scheme] for r in results]
        chi2, df = sum(r["chi2"] for r in rows), sum(r["df"] for r in rows)
        m[f"gof_p_{scheme}"] = float(stats.chi2.sf(chi2, df)) if df else 1.0
        m[f"gof_chi2_per_df_{scheme}"] = chi2 / df if df else math.nan
        seeds(f"gof_kl_{scheme}", [r["kl_corrected"] for r in rows])
    seeds("kl_key_marginal_kgw", [r["gof"]["kgw"]["kl_key_marginal"] for r in results])

    bins = entropy_bins(results, cfg.entropy_bins, cfg.gamma)
    m.update({k: v for k, v in bins.items() if k != "rows"})

    for arm, rule in ((main, "tpr_z4"), ("gumbel", "tpr_p")):
        for kind, key in (("substitution", "subst"), ("spans", "span")):
            table = [r["attacks"][arm][kind] for r in results]
            for level in table[0]:
                seeds(f"{rule}_{arm}_{key}{_pct(level)}", [t[level][rule] for t in table])
                seeds(f"z_mean_{arm}_{key}{_pct(level)}", [t[level]["z_mean"] for t in table])
    if 0.3 in results[0]["attacks"][main]["substitution"]:
        check = substitution_check(results, main, 0.3, cfg.length, results[0]["gamma_exact"])
        m["subst30_dev_z"] = check["dev_z"]
        m["subst30_dev_abs_z"] = abs(check["dev_z"])
        for k in ("retention", "retention_expected"):
            if k in check:
                m[f"subst30_{k}"] = check[k]

    info = [r["info"] for r in results]
    for key in info[0]:
        seeds(key, [i[key] for i in info])
    m["n_texts_per_seed"] = int(cfg.n_texts)
    m["n_seeds"] = len(results)
    return {"metrics": m, "bins": bins["rows"]}
