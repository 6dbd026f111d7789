import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from fmlab.stats import CI, aggregate_seeds, format_mean_ci, over_seeds, t_interval


def _runs():
    return pd.DataFrame(
        {
            "model": ["a"] * 4 + ["b"] * 3 + ["c"],
            "seed": [0, 1, 2, 3, 0, 1, 2, 0],
            "acc": [0.90, 0.92, 0.91, 0.95, 0.80, 0.85, np.nan, 0.70],
            "loss": [1.0, 1.1, 0.9, 1.0, 2.0, 2.2, 2.1, 3.0],
        }
    )


def test_aggregate_seeds_uses_the_t_interval():
    out = aggregate_seeds(_runs(), by=["model"], metrics=["acc", "loss"])
    assert list(out.columns) == ["model", "metric", "mean", "std", "low", "high", "n"]
    row = out[(out.model == "a") & (out.metric == "acc")].iloc[0]
    x = np.array([0.90, 0.92, 0.91, 0.95])
    lo, hi = sps.t.interval(0.95, 3, loc=x.mean(), scale=sps.sem(x))
    assert (row["mean"], row.low, row.high, row.n) == pytest.approx((x.mean(), lo, hi, 4))
    assert row["std"] == pytest.approx(x.std(ddof=1))
    b = out[(out.model == "b") & (out.metric == "acc")].iloc[0]
    assert b.n == 2 and b["mean"] == pytest.approx(0.825)  # the NaN seed is dropped
    c = out[(out.model == "c") & (out.metric == "loss")].iloc[0]
    assert c.n == 1 and math.isnan(c.low) and math.isnan(c.high)


def test_aggregate_seeds_without_groups_and_errors():
    out = aggregate_seeds(_runs(), by=[], metrics=["loss"])
    assert len(out) == 1 and out.n.iloc[0] == 8
    with pytest.raises(ValueError, match="missing"):
        aggregate_seeds(_runs(), by=["lr"], metrics=["acc"])


def test_t_interval_coverage_with_four_seeds():
    # 4 seeds is where a normal-quantile interval under-covers; the t interval should not
    rng = np.random.default_rng(0)
    hits = [t_interval(rng.normal(0.5, 0.1, 4)).contains(0.5) for _ in range(3000)]
    assert 0.935 <= np.mean(hits) <= 0.965


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((0.912, 0.882, 0.942), "0.91 ± 0.03"),
        ((0.9123, 0.8973, 0.9273), "0.912 ± 0.015"),
        ((1523.0, 1511.0, 1535.0), "1523 ± 12"),
        ((0.91, 0.85, 0.93), "0.91 [0.85, 0.93]"),  # asymmetric: no ±
        ((0.912, math.nan, math.nan), "0.912 ± nan"),
    ],
)
def test_format_mean_ci(args, expected):
    assert format_mean_ci(*args) == expected


def test_format_mean_ci_accepts_a_ci_and_digits():
    ci = CI(0.5, 0.4, 0.6, 0.95, "t", 3)
    assert format_mean_ci(ci) == "0.50 ± 0.10"  # a leading 1: two significant digits
    assert format_mean_ci(ci, digits=3) == "0.500 ± 0.100"


def test_over_seeds_writes_the_summary_contract():
    values = [0.5, 0.7, 0.9]
    out = over_seeds("acc", values, extremes=True)
    half = sps.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
    assert out["acc"] == pytest.approx(0.7) and out["acc_by_seed"] == values
    assert out["acc_ci_low"] == pytest.approx(0.7 - half)
    assert 0.7 + half > 1 and out["acc_ci_high"] == 1.0  # a fraction: clipped (stats.bounds)
    assert (out["acc_min"], out["acc_max"]) == (0.5, 0.9)
    missing = over_seeds("step", [10, None, 30], extremes=True)
    assert missing == {"step_by_seed": [10, None, 30], "step": None, "step_min": None,
                       "step_max": None}  # fmt: skip
    assert set(over_seeds("x", [1.0])) == {"x", "x_by_seed"}  # one seed: no interval


def test_over_seeds_on_the_log_scale_is_a_geometric_mean():
    ratios = [7.4, 3.6, 7.3]
    out = over_seeds("r", ratios, log=True)
    assert out["r"] == pytest.approx(sps.gmean(ratios))
    logs = np.log(ratios)
    half = sps.t.ppf(0.975, 2) * logs.std(ddof=1) / np.sqrt(3)
    assert out["r_ci_low"] == pytest.approx(np.exp(logs.mean() - half))
