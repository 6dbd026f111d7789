"""From per-problem scores to the ``emergence`` study's metrics, CIs and figure data.

Curves: each metric averaged over seeds and problems, per width. Bootstrap replicates
resample the seeds of each width (independently: models of different widths share
nothing) and the evaluation problems (one draw for every model, so the curve stays paired
across widths); replicate 0 is the observed curve. The transition-vs-smooth comparison
(:mod:`fmlab.fit.abrupt`) runs on the *error* form of each metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fmlab.fit.abrupt import bootstrap_log_ratio, compare_shapes
from fmlab.measure.calibration import ece
from fmlab.stats import over_seeds
from fmlab.stats.seeds import CI_HIGH, CI_LOW
from fmlab.studies.emergence.arithmetic import Task

# metric → its error (0 = perfect), as the shape comparison needs it
# (clipped at 0: a resampled mean of ones can round to 1 + 2e-16)
ERRORS = {
    "em": lambda v: np.maximum(1 - v, 0.0),
    "mc_acc": lambda v: np.maximum(1 - v, 0.0),
    "tok_acc": lambda v: np.maximum(1 - v, 0.0),
    "gen_tok_acc": lambda v: np.maximum(1 - v, 0.0),
    "edit": lambda v: np.maximum(v, 0.0),
    "brier": lambda v: np.maximum(v, 0.0),
    "logp": lambda v: np.maximum(-v, 0.0),
}
DISCONTINUOUS = ("em", "mc_acc")
# The fits' last bits differ between processes (numpy's SIMD reductions depend on how an
# array is aligned in memory: 2e-14 seen on equal inputs), so ratios are reported rounded.
DIGITS = 10


def _r(x: float) -> float:
    return round(float(x), DIGITS)


def replicate_curves(arrays: list[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """(1 + B, W) curves of one metric: ``arrays[w]`` is (K, n) per width; row 0 the
    observed mean, then resamples of seeds (per width) and problems (shared)."""
    rng = np.random.default_rng(seed)
    n = arrays[0].shape[1]
    pw = rng.multinomial(n, np.full(n, 1 / n), size=n_boot) / n  # (B, n) problem weights
    out = np.empty((n_boot + 1, len(arrays)))
    for w, a in enumerate(arrays):
        K = a.shape[0]
        out[0, w] = a.mean()
        sw = rng.multinomial(K, np.full(K, 1 / K), size=n_boot) / K  # (B, K)
        out[1:, w] = np.einsum("bk,kn,bn->b", sw, a, pw)
    return out


def summarise(cfg: Any, results: list[dict]) -> dict[str, Any]:
    N = np.array([r["n_params"] for r in results], dtype=float)
    m: dict[str, Any] = {"n_params_min": int(N.min()), "n_params_max": int(N.max())}
    m["param_decades"] = float(np.log10(N.max() / N.min()))
    curves: dict[str, dict[str, list[float]]] = {}
    shapes: dict[str, dict[str, float]] = {}
    B = cfg.n_bootstrap
    for _t, task in enumerate(cfg.tasks):
        curves[task], shapes[task] = {}, {}
        for metric in ERRORS:
            arrays = [r["scores"][task][metric] for r in results]
            c = np.array([a.mean() for a in arrays])
            curves[task][metric] = c.tolist()
            ratio = _r(compare_shapes(N, ERRORS[metric](c)).log_ratio)
            shapes[task][metric] = ratio
            m[f"{metric}_log_ratio_{task}"] = ratio
        L = Task.parse(task).answer_len
        tok = np.array(curves[task]["tok_acc"])
        curves[task]["tok_acc_pow_L"] = (tok**L).tolist()
        curves[task]["prod_acc"] = [
            float(np.mean([np.prod(s.mean(0)) for s in r["scores"][task]["tok_correct"]]))
            for r in results
        ]
    # claim 1 (main task) and claim 3 (EM of each answer length): bootstrap CIs
    boots: dict[tuple[str, str], np.ndarray] = {}
    pairs = [(cfg.main_task, x) for x in ("em", "tok_acc", "logp")]
    pairs += [(t, "em") for t in cfg.length_tasks if (t, "em") not in pairs]
    for i, (task, metric) in enumerate(pairs):
        rep = replicate_curves(
            [r["scores"][task][metric] for r in results], B, cfg.eval_seed + 31 * i
        )
        ci, ratios = bootstrap_log_ratio(N, ERRORS[metric](rep))
        boots[(task, metric)] = np.round(ratios, DIGITS)
        m[f"{metric}_log_ratio_{task}{CI_LOW}"] = _r(ci.low)
        m[f"{metric}_log_ratio_{task}{CI_HIGH}"] = _r(ci.high)
    for metric in ("em", "tok_acc", "logp"):
        for suffix in ("", CI_LOW, CI_HIGH):
            m[f"{metric}_log_ratio{suffix}"] = m[f"{metric}_log_ratio_{cfg.main_task}{suffix}"]
    # claim 3: abruptness (EM's log ratio) of the longest answers minus the shortest
    by_len = sorted(cfg.length_tasks, key=lambda t: Task.parse(t).answer_len)
    diff = boots[(by_len[-1], "em")] - boots[(by_len[0], "em")]
    m["abrupt_long_minus_short"] = float(diff[0])
    m[f"abrupt_long_minus_short{CI_LOW}"], m[f"abrupt_long_minus_short{CI_HIGH}"] = (
        float(v) for v in np.quantile(diff[1:], [0.025, 0.975])
    )
    m["length_task_L"] = [Task.parse(t).answer_len for t in by_len]
    # claim 2: EM against the product of per-position accuracies, per model, CI over seeds
    off = []
    for r in results:
        tc = r["scores"][cfg.main_task]["tok_correct"]  # (K, n, L)
        em = r["scores"][cfg.main_task]["em_tf"].mean(1)  # (K,)
        diffs = [float(e - np.prod(s.mean(0))) for e, s in zip(em, tc, strict=True)]
        s = over_seeds(f"em_minus_prod_d{r['width']}", diffs)
        m |= s
        lo, hi = (
            s.get(f"em_minus_prod_d{r['width']}{CI_LOW}"),
            s.get(f"em_minus_prod_d{r['width']}{CI_HIGH}"),
        )
        if lo is not None:
            off.append(max(0.0, lo, -hi))
    m["em_prod_max_ci_off0"] = max(off) if off else None
    m["em_prod_max_abs_gap"] = max(abs(m[f"em_minus_prod_d{r['width']}"]) for r in results)
    # part 3: ECE of the multiple-choice probabilities (all tasks pooled) against size
    slopes, eces = [], []
    for k in range(len(cfg.seeds)):
        per = []
        for r in results:
            probs = np.concatenate([r["scores"][t]["mc_probs"][k] for t in cfg.tasks])
            labels = np.concatenate([r["labels"][t] for t in cfg.tasks])
            per.append(ece(probs, labels, cfg.ece_bins))
        eces.append(per)
        slopes.append(float(np.polyfit(np.log10(N), per, 1)[0]))
    m |= over_seeds("ece_slope_per_decade", slopes)
    e = np.array(eces)  # (K, W)
    m |= over_seeds("ece_smallest", e[:, 0].tolist())
    m |= over_seeds("ece_largest", e[:, -1].tolist())
    for task in cfg.tasks:
        for metric in ("em", "tok_acc", "logp", "mc_acc", "brier", "edit"):
            m[f"{metric}_largest_{task}"] = curves[task][metric][-1]
    # the reverse check: continuous metrics whose curve a transition still predicts better
    m["continuous_jumps"] = sorted(
        f"{task}:{metric}"
        for task in cfg.tasks
        for metric, ratio in shapes[task].items()
        if metric not in DISCONTINUOUS and ratio > 0
    )
    artifacts = {
        "n_params": N.tolist(),
        "widths": [r["width"] for r in results],
        "tasks": {t: {"L": Task.parse(t).answer_len, **curves[t]} for t in cfg.tasks},
        "log_ratio": shapes,
        "ece": e.tolist(),
        "main_task": cfg.main_task,
        "length_tasks": by_len,
    }
    return {"metrics": m, "artifacts": artifacts}
