"""Intervals of bounded quantities stay inside their bounds (issue 17): an accuracy at
1.0 over seeds must not get an upper end above 1, nor an accuracy near 0 a negative
lower end — wherever the interval is computed or shown."""

from __future__ import annotations

import pandas as pd
import pytest

from fmlab.claims import Claim
from fmlab.report.html import claims_table, metrics_table
from fmlab.stats import aggregate_seeds, over_seeds, t_interval
from fmlab.stats.bounds import clip_interval, interval_bounds, is_fraction


@pytest.mark.parametrize(
    "name",
    ["test_acc_final", "ft_ood_acc", "fourier_top_k_frac_final", "metric:train_acc",
     "fpr_z4_kgw_lefthash", "probe_acc_last", "win_rate_dpo", "ece_base", "add2_em_d19"],
)  # fmt: skip
def test_fractions_are_recognised(name):
    assert is_fraction(name)


@pytest.mark.parametrize(
    "name",
    ["loss", "acc_gain", "ood_acc_gap", "grokfast_step_test_acc_95", "log_acc_ratio",
     "weight_norm_final", "fourier_eff_freqs_final", "ece_gain_dpo", "em_minus_product"],
)  # fmt: skip
def test_differences_counts_and_steps_are_not_fractions(name):
    assert not is_fraction(name)


def test_an_accuracy_at_one_over_seeds_stays_below_one():
    raw = t_interval([1.0, 0.99, 1.0])
    assert raw.high > 1  # the plain t-interval leaves [0, 1]: the reason for the rule
    m = over_seeds("test_acc_final", [1.0, 0.99, 1.0])
    assert m["test_acc_final_ci_high"] == 1.0
    assert m["test_acc_final_ci_low"] == pytest.approx(raw.low)
    exact = over_seeds("test_acc_final", [1.0, 1.0, 1.0])
    assert exact["test_acc_final_ci_low"] == exact["test_acc_final_ci_high"] == 1.0


def test_an_accuracy_near_zero_gets_no_negative_end_but_a_loss_keeps_its_interval():
    m = over_seeds("test_acc", [0.0, 0.02, 0.0])
    assert m["test_acc_ci_low"] == 0.0 and m["test_acc_ci_high"] > 0.02
    loss = over_seeds("loss", [0.0, 0.02, 0.0])
    assert loss["loss_ci_low"] < 0  # not bounded by name: the t-interval as it is
    gain = over_seeds("acc_gain", [1.0, 0.99, 1.0])
    assert gain["acc_gain_ci_high"] > 1


def test_a_fraction_named_metric_with_values_outside_the_unit_interval_is_not_clipped():
    assert interval_bounds("acc", [1.5, 2.0]) is None
    m = over_seeds("acc", [1.5, 2.0, 1.0])
    assert m["acc_ci_low"] < 1.0 < 2.0 < m["acc_ci_high"]


def test_sweep_tables_clip_fractions():
    frame = pd.DataFrame({"lr": [1, 1, 1], "metric:test_acc": [1.0, 0.99, 1.0],
                          "metric:loss": [0.0, 0.02, 0.0]})  # fmt: skip
    table = aggregate_seeds(frame, ["lr"], ["metric:test_acc", "metric:loss"])
    acc = table[table["metric"] == "metric:test_acc"].iloc[0]
    loss = table[table["metric"] == "metric:loss"].iloc[0]
    assert acc["high"] == 1.0 and loss["low"] < 0


def test_claims_and_reports_clip_intervals_a_study_computed_itself():
    metrics = {"test_acc": 0.9997, "test_acc_ci_low": 0.9983, "test_acc_ci_high": 1.001}
    claim = Claim("c", "src", "s", "test_acc", ">=", 0.99, decide_by="ci")
    result = claim.evaluate(metrics)
    assert result["ci"] == [0.9983, 1.0] and result["passed"] is True
    page = metrics_table(metrics)
    assert "[0.9983, 1]" in page and "1.001" not in page


def test_clip_leaves_missing_ends_alone():
    assert clip_interval(None, 1.2, (0.0, 1.0)) == (None, 1.0)
    assert clip_interval(-0.1, 0.5, None) == (-0.1, 0.5)


def test_a_summary_written_before_the_rule_is_shown_clipped():
    old = {"id": "c", "source": "s", "statement": "st", "metric": "test_acc", "value": 0.9997,
           "ci": [0.9983, 1.001], "threshold": ">= 0.99", "passed": True, "note": ""}  # fmt: skip
    page = claims_table([old])
    assert "[0.9983, 1]" in page and "1.001" not in page
