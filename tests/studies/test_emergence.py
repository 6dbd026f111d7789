"""The ``emergence`` study: the transition-vs-smooth comparison (fmlab.fit.abrupt) picks
the right shape on synthetic curves of each kind (its power stated), scoring is the same
for an ensemble member and the model alone, greedy exact match is the teacher-forced
conjunction, and bad config values are one-line errors. The quick preset's claims are
checked by running it (docs/emergence.md), not here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmlab.fit.abrupt import bootstrap_log_ratio, compare_shapes
from fmlab.models import GPT, GPTConfig
from fmlab.studies.emergence.config import EmergenceConfig
from fmlab.studies.emergence.evaluate import score, single
from fmlab.studies.emergence.train import eval_sets, mixture
from fmlab.train.ensemble import Ensemble

N = np.geomspace(1e3, 1e5, 7)  # 7 sizes over 2 decades, like the quick preset


def _sigmoid_error(rng):  # 1 - accuracy that jumps from 0.1 to 1.0 around N = 1e4
    z = np.log(N)
    e = 1 - 0.9 / (1 + np.exp(-(z - np.log(1e4)) / 0.3))
    return np.clip(e + rng.normal(0, 0.05, len(N)), 0, None)


def _power_error(rng):  # e = 2 N^-1/4 with 5 % multiplicative noise
    return 2 * N**-0.25 * (1 + rng.normal(0, 0.05, len(N)))


def test_comparison_has_power_on_both_kinds_of_curve():
    """Power measured here (20 noisy curves each): a jump is called a transition
    (log_ratio > 0) in >= 80 %, a power law smooth (log_ratio <= 0) in >= 80 %. Over 50
    curves each the rates were 98 % and 88 % (docs/emergence.md)."""
    jumps = [compare_shapes(N, _sigmoid_error(np.random.default_rng(i))) for i in range(20)]
    smooth = [compare_shapes(N, _power_error(np.random.default_rng(100 + i))) for i in range(20)]
    assert np.mean([c.log_ratio > 0 for c in jumps]) >= 0.8
    assert np.mean([c.log_ratio <= 0 for c in smooth]) >= 0.8
    exact = compare_shapes(N, 2 * N**-0.25)  # a noiseless power law: the smooth fit is exact
    assert exact.smooth_rmse < 1e-6 < exact.transition_rmse


def test_bootstrap_interval_brackets_the_observed_ratio():
    rng = np.random.default_rng(5)
    curves = [_sigmoid_error(rng) for _ in range(12)]
    ci, ratios = bootstrap_log_ratio(N, curves)
    assert ratios.shape == (12,) and ci.estimate == ratios[0] and ci.low <= ci.high
    assert ci.low > 0  # every resample of a jump is called a transition


def test_comparison_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 6"):
        compare_shapes(N[:5], np.ones(5))
    with pytest.raises(ValueError, match="error"):
        compare_shapes(N, -np.ones(7))


def test_ensemble_scores_equal_each_model_alone_and_greedy_em_is_teacher_forced():
    cfg = EmergenceConfig(tasks=["add1", "add2"], main_task="add2",
                          length_tasks=["add1", "add2"], eval_problems=16)  # fmt: skip
    V = mixture(cfg).vocab_size
    models = [
        GPT(
            GPTConfig(n_layers=1, d_model=8, n_heads=1, d_mlp=16),
            vocab_size=V,
            seq_len=cfg.seq_len,
            generator=torch.Generator().manual_seed(s),
        )
        for s in range(2)
    ]
    ev = eval_sets(cfg)["add2"]
    both = score(Ensemble(models), ev)
    for k, m in enumerate(models):
        alone = score(single(m.eval()), ev)
        for key, value in alone.items():
            np.testing.assert_allclose(both[key][k], value[0], atol=1e-6, err_msg=key)
    np.testing.assert_array_equal(both["em"], both["em_tf"])
    assert both["tok_correct"].shape == (2, 16, 3) and both["mc_probs"].shape == (2, 16, 4)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('tasks=["add2","sub3"]', "add<n> or mul<n>"),
        ("main_task=mul3", "not among tasks"),
        ('tasks=["add1","add2","mul1"];length_tasks=["add1","mul1"]', "two answer lengths"),
        ("seq_len=5", "too short"),
    ],
)
def test_bad_config_is_one_line(setting, message, tmp_path):
    from typer.testing import CliRunner

    from fmlab.cli import app

    sets = [a for one in setting.split(";") for a in ("--set", one)]
    args = ["run", "emergence", "-p", "smoke", *sets, "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--no-report"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
