"""The ``icl`` study: shared prompts, paired statistics and claims that read its metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmlab.catalog import get_study
from fmlab.config import ConfigError
from fmlab.studies.icl import CLAIMS, ICLConfig
from fmlab.studies.icl.eval import compare, gap_closed, holm_family, pooled_ratio
from fmlab.tasks.icl import ICLTaskConfig, eval_prompts

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: 1 thread is fastest


def test_noisy_prompts_are_the_same_prompts_plus_output_noise():
    task = ICLTaskConfig(n_dims=4, n_points=9)
    clean = eval_prompts(task, 500, 7)
    noisy = eval_prompts(task.model_copy(update={"noise_std": 0.1}), 500, 7)
    assert torch.equal(clean.xs, noisy.xs)  # same inputs (and functions: noise drawn last)
    noise = (noisy.ys - clean.ys).flatten()
    assert abs(noise.std().item() - 0.1) < 0.005 and abs(noise.mean().item()) < 0.005


def test_pooled_ratio_is_the_ratio_of_summed_mean_errors():
    rng = np.random.default_rng(0)
    a, b = rng.exponential(2.0, (300, 6)), rng.exponential(1.0, (300, 6))
    ci = pooled_ratio(a, b, [1, 2, 3], n_resamples=500, seed=0)
    assert ci.estimate == pytest.approx(a[:, 1:4].sum() / b[:, 1:4].sum())
    assert ci.low < ci.estimate < ci.high


def test_gap_closed_is_one_at_the_better_learner_and_zero_at_the_worse():
    rng = np.random.default_rng(1)
    worse, better = rng.exponential(1.0, (200, 4)) + 1.0, rng.exponential(0.1, (200, 4))
    kw = {"n_resamples": 300, "seed": 0}
    assert gap_closed(better, worse, better, [1, 2], **kw).estimate == pytest.approx(1.0)
    assert gap_closed(worse, worse, better, [1, 2], **kw).estimate == pytest.approx(0.0)
    halfway = (worse + better) / 2
    assert gap_closed(halfway, worse, better, [1, 2], **kw).estimate == pytest.approx(0.5)


def test_paired_comparisons_find_a_real_difference_and_adjust_for_multiplicity():
    rng = np.random.default_rng(2)
    base = rng.exponential(1.0, (200, 5))
    better = base * 0.8  # paired: 20 % lower on every prompt
    out = compare(better, base, [1, 2, 3, 4], alternative="less", n_resamples=500, seed=0)
    assert all(c.diff < 0 and c.high < 0 and c.p_holm <= 0.05 for c in out)
    same = compare(base, base + rng.normal(0, 0.01, base.shape), [1, 2], n_resamples=500, seed=0)
    assert all(c.low <= 0 <= c.high or abs(c.diff) < 0.01 for c in same)
    family = holm_family(out + same)
    assert all(f.p_holm >= c.p - 1e-12 for f, c in zip(family, out + same, strict=True))


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"baselines": ["least_squares", "knn"]}, "baselines"),
        ({"baselines": ["least_squares", "knn", "averaging", "nope"]}, "baselines"),
        ({"task": {"function_class": "relu_net"}}, "function_class"),
    ],
)
def test_bad_configs_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        ICLConfig().override(**override)


def test_smoke_run_reports_every_claimed_metric(tmp_path):
    from fmlab.runner import execute

    study = get_study("icl")
    result = execute(study, study.preset("smoke"), tmp_path, reraise=True)
    metrics = result.summary["metrics"]
    assert metrics["sparse_lasso_advantage"] is not None  # at d = 2 Lasso may have no edge:
    if metrics["sparse_lasso_advantage"] <= 0:  # then there is no gap to close
        assert metrics["sparse_gap_closed"] is None
    for claim in CLAIMS:
        if claim.metric == "sparse_gap_closed" and metrics["sparse_gap_closed"] is None:
            continue
        assert metrics.get(claim.metric) is not None, claim.metric
        if claim.decide_by == "ci":
            assert metrics[f"{claim.metric}_ci_low"] <= metrics[f"{claim.metric}_ci_high"]
    d = metrics["n_dims"]
    assert len(metrics["least_squares_err_by_k"]) == metrics["n_points"]
    assert metrics["least_squares_err_at_2d"] < 1e-6  # exact from k = d on, no noise
    assert metrics["noisy_least_squares_err_at_d"] > metrics["noisy_ridge_err_at_d"]
    assert len(metrics["ratio_vs_ls_by_k"]) == d - 1
    assert (result.path / "artifacts" / "curves.json").exists()
