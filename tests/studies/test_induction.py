"""The ``induction-heads`` study: transition bookkeeping on hand-made curves, and claims."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmlab.catalog import get_study
from fmlab.config import ConfigError
from fmlab.studies.induction_heads import CLAIMS, InductionStudyConfig
from fmlab.studies.induction_heads.summary import (
    GAIN_KEYS,
    formation_window,
    gain_shares,
    per_model,
    uniform_prefix_score,
)
from fmlab.studies.induction_heads.train import History, Trained
from fmlab.tasks.induction import prefix_matching_score

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: 1 thread is fastest


def synthetic(step_at: float, icl_curve) -> Trained:
    """A model whose repeated-token loss drops and best prefix score jumps at ``step_at``."""
    h = History()
    for step in range(0, 2001, 25):
        after = step >= step_at
        h.add(
            step,
            {
                "loss_repeated": 1.0 if after else 3.5,
                "loss_other": 4.1,
                "prefix_max": 0.8 if after else 0.03,
                "icl_score": icl_curve(step),
            },
        )
    return Trained(2, 0, h, np.array([[0.1, 0.05], [0.8, 0.02]]), 1.0, 1.0)


def test_a_sudden_change_is_located_and_its_icl_gain_attributed_to_it():
    row = per_model(synthetic(1000, lambda s: -0.1 - (1.0 if s >= 1000 else 0.0)), 25)
    assert row["phase_change_step"] == 1000 and row["prefix_change_step"] == 1000
    assert row["changepoint_gap_frac"] == 0
    assert row["icl_change_step"] == 1000 and row["icl_changepoint_gap_frac"] == 0
    assert row["window_start"] < 1000 <= row["window_end"]
    assert row["icl_gain_in_window"] == pytest.approx(1.0)
    assert row["icl_gain_before_window"] == row["icl_gain_after_window"] == pytest.approx(0)
    assert row["icl_score_before"] == pytest.approx(-0.1)
    assert row["icl_score_after"] == pytest.approx(-1.1)
    assert row["prefix_max"] == pytest.approx(0.8)


def test_a_gradual_icl_gain_is_mostly_outside_the_window():
    row = per_model(synthetic(1000, lambda s: -s / 2000), 25)  # linear decline all along
    width = row["window_end"] - row["window_start"]
    assert row["icl_gain_in_window"] == pytest.approx(width / 2000)
    assert row["icl_gain_in_window"] < 0.5
    assert row["icl_gain_before_window"] == pytest.approx(row["window_start"] / 2000)
    assert row["icl_gain_after_window"] == pytest.approx(1 - row["window_end"] / 2000)
    assert row["icl_gain_rate_ratio"] == pytest.approx(1.0)  # the same pace all along


def test_gain_shares_split_the_fall_and_compare_its_pace():
    # 0 → -1 over [0, 1000]: 0.2 before a window [100, 200], 0.5 in it, 0.3 after it
    shares = gain_shares(0.0, -0.2, -0.7, -1.0, (100, 200), (0, 1000))
    assert [shares[k] for k in GAIN_KEYS[:3]] == pytest.approx([0.2, 0.5, 0.3])
    # 0.5 of the gain in 10 % of the steps, 0.5 in the other 90 %: 9 times the pace
    assert shares["icl_gain_rate_ratio"] == pytest.approx(9.0)
    assert all(v is None for v in gain_shares(0.0, 0.1, 0.2, 0.3, (1, 2), (0, 3)).values())


def test_an_icl_jump_away_from_the_head_is_measured_as_such():
    row = per_model(synthetic(1000, lambda s: -0.1 - (1.0 if s >= 1500 else 0.0)), 25)
    assert row["icl_change_step"] == 1500
    assert row["icl_changepoint_gap_frac"] == pytest.approx(500 / 2000)


def test_no_rise_means_no_window():
    steps = np.arange(0, 1000, 25.0)
    assert formation_window(steps, np.full(len(steps), 0.03), 25) is None
    assert formation_window(steps, 0.5 - steps / 4000, 25) is None  # falling, not rising


def test_uniform_prefix_score_matches_the_instrument_on_uniform_attention():
    T, period = 64, 32
    uniform = torch.tril(torch.ones(T, T))
    uniform = (uniform / uniform.sum(1, keepdim=True))[None, None]
    expected = prefix_matching_score(uniform, period).item()
    assert uniform_prefix_score(period, T) == pytest.approx(expected)
    assert 0.02 < expected < 0.025  # ~1/position: far below the 0.2 and 0.5 thresholds


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"model": {"d_mlp": 64}}, "d_mlp"),
        ({"layers": [2, 3]}, "layers"),
        ({"icl_early_end": 60, "icl_late_start": 40}, "icl_early_end"),
        ({"task": {"vocab_size": 16}}, "vocab_size"),
    ],
)
def test_bad_configs_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        InductionStudyConfig().override(**override)


def test_smoke_run_reports_every_claimed_metric_and_the_attention_example(tmp_path):
    from fmlab.runner import execute

    study = get_study("induction-heads")
    result = execute(study, study.preset("smoke"), tmp_path, reraise=True)
    metrics = result.summary["metrics"]
    for claim in CLAIMS:
        assert claim.metric in metrics, claim.metric
    assert 0 <= metrics["prefix_max_1l"] <= 1 and 0 <= metrics["prefix_max_2l"] <= 1
    artifacts = result.path / "artifacts"
    assert (artifacts / "attention_2L_seed0.json").exists()
    assert (artifacts / "models.json").exists()
