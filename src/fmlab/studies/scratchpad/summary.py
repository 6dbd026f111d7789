"""From per-model exact matches to the study's numbers: samples to reach the target
exact match (per seed, and of the seed-mean curve with a bootstrap CI over seeds), the
formats' paired sample-efficiency ratios (t-interval over seeds), length
generalization, the scratchpad ablation, and the phase-change fit of exact match against
dataset size."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from fmlab.fit.transitions import TransitionFit, fit_changepoint
from fmlab.stats import over_seeds

MIN_FIT_SIZES = 5  # TransitionFit needs five points


def samples_to_reach(sizes: Sequence[float], acc: Sequence[float], level: float) -> float:
    """The smallest dataset size at which exact match reaches ``level``: the first grid
    point at or above it, interpolated linearly in log size from the point before.
    ``inf`` when no size reaches it; the smallest size when the first already does
    (the value is then an upper bound)."""
    s, a = np.asarray(sizes, float), np.asarray(acc, float)
    hit = np.flatnonzero(a >= level)
    if len(hit) == 0:
        return math.inf
    i = int(hit[0])
    if i == 0:
        return float(s[0])
    z0, z1 = math.log(s[i - 1]), math.log(s[i])
    frac = (level - a[i - 1]) / (a[i] - a[i - 1])
    return float(math.exp(z0 + frac * (z1 - z0)))


def censored(n: float, sizes: Sequence[float]) -> float:
    """Not reached on the grid → the largest size (a lower bound of the true value)."""
    return float(max(sizes)) if math.isinf(n) else n


def bootstrap_n90(
    acc: dict[str, np.ndarray], sizes: Sequence[int], level: float, n_boot: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Samples to ``level`` of the seed-mean curve for every format, on ``n_boot``
    resamples of the seeds (the same resampled seeds for every format, so ratios are
    paired). ``acc[fmt]`` is (seeds, sizes). Returns {fmt: (n_boot,)} (censored)."""
    rng = np.random.default_rng(seed)
    n_seeds = next(iter(acc.values())).shape[0]
    picks = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    return {
        fmt: np.array(
            [censored(samples_to_reach(sizes, a[p].mean(0), level), sizes) for p in picks]
        )
        for fmt, a in acc.items()
    }


def transition(sizes: Sequence[int], curve: Sequence[float]) -> dict[str, float] | None:
    """Sigmoid in log size (fmlab.fit.transitions) and the mean-shift changepoint; None
    with fewer than five sizes or a flat curve."""
    y = np.asarray(curve, float)
    if len(sizes) < MIN_FIT_SIZES or np.ptp(y) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = TransitionFit(log_x=True).fit(np.asarray(sizes, float), y)
    cp = fit_changepoint(np.asarray(sizes, float), y, min_size=1)
    return {
        "t0": fit.t0_,
        "span": fit.end_ / fit.onset_,  # factor in size from 10 % to 90 % of the way
        "lo": fit.lo_,
        "hi": fit.hi_,
        "r2": fit.r2_,
        "changepoint_size": cp.t,
        "changepoint_jump": cp.after - cp.before,
        "changepoint_explained": cp.explained,
    }


def summarise(cfg, results: dict[str, dict[str, dict]]) -> tuple[dict[str, Any], dict]:
    """``results[op][fmt]`` holds (seeds, sizes) arrays ``test``, ``test_digits``,
    ``longer``, ``longer_digits`` and, for the scratchpad, ``ablation``. Returns the
    summary metrics and the artifact (everything the figures need)."""
    sizes = list(cfg.sizes)
    level = cfg.target_exact
    metrics: dict[str, Any] = {}
    art: dict[str, Any] = {"sizes": sizes, "seeds": list(cfg.seeds), "level": level, "ops": {}}
    for op, by_fmt in results.items():
        acc = {fmt: r["test"] for fmt, r in by_fmt.items()}
        boot = bootstrap_n90(acc, sizes, level, cfg.n_boot)
        a_op: dict[str, Any] = {"formats": {}}
        for fmt, r in by_fmt.items():
            mean = r["test"].mean(0)
            n90 = samples_to_reach(sizes, mean, level)
            lo, hi = np.quantile(np.log10(boot[fmt]), [0.025, 0.975])
            per_seed = [samples_to_reach(sizes, row, level) for row in r["test"]]
            key = f"{op}_n90_{fmt}"
            metrics[key] = None if math.isinf(n90) else n90
            metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"] = 10**lo, 10**hi
            metrics[f"{key}_by_seed"] = [None if math.isinf(v) else v for v in per_seed]
            for i, n in enumerate(sizes):
                metrics |= over_seeds(f"{op}_exact_acc_{fmt}_at{n}", list(r["test"][:, i]))
            big = len(sizes) - 1
            metrics |= over_seeds(f"{op}_longer_exact_acc_{fmt}", list(r["longer"][:, big]))
            metrics |= over_seeds(f"{op}_longer_digit_acc_{fmt}", list(r["longer_digits"][:, big]))
            metrics[f"{op}_tokens_per_sample_{fmt}"] = r["tokens_per_sample"]
            fit = transition(sizes, mean)
            if fit is not None:
                metrics[f"{op}_transition_span_{fmt}"] = fit["span"]
                metrics[f"{op}_transition_t0_{fmt}"] = fit["t0"]
                metrics[f"{op}_transition_r2_{fmt}"] = fit["r2"]
                spans = _boot_spans(r["test"], sizes, cfg.n_boot)
                if spans is not None:
                    metrics[f"{op}_transition_span_{fmt}_ci_low"] = spans[0]
                    metrics[f"{op}_transition_span_{fmt}_ci_high"] = spans[1]
            a_op["formats"][fmt] = {
                "test": r["test"].tolist(),
                "test_digits": r["test_digits"].tolist(),
                "longer": r["longer"].tolist(),
                "longer_digits": r["longer_digits"].tolist(),
                "n90": None if math.isinf(n90) else n90,
                "n90_ci": [10**lo, 10**hi],
                "fit": fit,
                "tokens_per_sample": r["tokens_per_sample"],
            }
            if "ablation" in r:
                a_op["formats"][fmt]["ablation"] = r["ablation"].tolist()
        for slow, fast in (("plain", "reversed"), ("reversed", "scratchpad")):
            if slow in boot and fast in boot:
                # the claim: per-seed paired log ratios (the same seed's data and init),
                # t-interval over seeds as every study's claims; the bootstrap of the
                # seed-mean curve is reported beside it (with 3 seeds it has 10 distinct
                # resamples and its percentile interval is too narrow to decide on)
                key = f"{op}_log10_n90_ratio_{slow}_{fast}"
                per_seed = [
                    math.log10(censored(samples_to_reach(sizes, a, level), sizes)
                               / censored(samples_to_reach(sizes, b, level), sizes))
                    for a, b in zip(acc[slow], acc[fast], strict=True)
                ]  # fmt: skip
                metrics |= over_seeds(key, per_seed)
                ratio = np.log10(boot[slow] / boot[fast])
                metrics[f"{key}_mean_curve"] = math.log10(
                    censored(samples_to_reach(sizes, acc[slow].mean(0), level), sizes)
                    / censored(samples_to_reach(sizes, acc[fast].mean(0), level), sizes)
                )
                metrics[f"{key}_boot_ci_low"], metrics[f"{key}_boot_ci_high"] = (
                    float(v) for v in np.quantile(ratio, [0.025, 0.975])
                )
        big = len(sizes) - 1
        if "plain" in by_fmt:
            base = by_fmt["plain"]["longer"][:, big]
            for fmt in ("reversed", "scratchpad"):
                if fmt in by_fmt:
                    gap = by_fmt[fmt]["longer"][:, big] - base
                    metrics |= over_seeds(f"{op}_longer_gap_{fmt}", list(gap))
        if "scratchpad" in by_fmt and "ablation" in by_fmt["scratchpad"]:
            sp = by_fmt["scratchpad"]
            metrics |= over_seeds(f"{op}_ablation_exact_acc", list(sp["ablation"][:, big]))
            drop = sp["test"][:, big] - sp["ablation"][:, big]
            metrics |= over_seeds(f"{op}_ablation_drop", list(drop))
        art["ops"][op] = a_op
    return metrics, art


def _boot_spans(acc: np.ndarray, sizes: Sequence[int], n_boot: int) -> tuple[float, float] | None:
    """95 % percentile interval of the transition span over resampled seeds (a tenth of
    ``n_boot``, at most 200 resamples: each is a least-squares fit); None if fewer than
    10 fits succeed."""
    rng = np.random.default_rng(1)
    spans = []
    for _ in range(min(n_boot // 10, 200)):
        pick = rng.integers(0, acc.shape[0], acc.shape[0])
        fit = transition(sizes, acc[pick].mean(0))
        if fit is not None and math.isfinite(fit["span"]):
            spans.append(fit["span"])
    if len(spans) < 10:
        return None
    lo, hi = np.quantile(spans, [0.025, 0.975])
    return float(lo), float(hi)
