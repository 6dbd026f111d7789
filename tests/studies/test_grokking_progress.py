"""The grokking study's progress measures: the phase estimators on constructed curves,
and the smoke preset logging the measures at its recorded steps."""

import json
import math

import pytest

from fmlab.catalog import get_study
from fmlab.runner import execute
from fmlab.store import read_metrics
from fmlab.studies.grokking.progress import Progress, fall_step, phases

STUDY = get_study("grokking")


def test_fall_step_is_measured_on_the_log_scale_from_the_peak():
    steps = [0, 10, 20, 30, 40]
    values = [1.0, 100.0, 10.0, 1.0, 0.01]  # peak 100 at step 10, log fall to 0.01: 4 decades
    assert fall_step(steps, values, 0, 0.25) == 20  # one decade down
    assert fall_step(steps, values, 0, 0.5) == 30
    assert fall_step(steps, values, 20, 0.5) == 40  # from step 20 on: 10 -> 0.01
    assert fall_step([0, 1, 2], [1.0, 2.0, 3.0], 0, 0.5) is None  # never falls


def synthetic(train99=100):
    """Train loss flat at 1e-3 after memorisation; test loss flat at 10 then falling from
    step 600; restricted loss falling from step 300; excluded loss rising 1e-3 -> 1."""
    steps = list(range(0, 1001, 50))
    progress = Progress(every=1, steps=steps)
    rows = []
    for s in steps:
        test = 10.0 if s < 600 else 10.0 * 10 ** (-(s - 550) / 50)
        restricted = 5.0 if s < 300 else 5.0 * 10 ** (-(s - 250) / 150)
        progress.curves.append({"train_loss": 1e-3, "test_loss": test})
        excluded = 1e-3 * 10 ** (3 * min(max(s - 100, 0), 500) / 500)
        rows.append({"excluded_loss": excluded, "restricted_loss": restricted})
    return progress, rows


def test_phases_of_constructed_curves():
    progress, rows = synthetic()
    out = phases(progress, rows, train99=90)
    assert out["t_mem"] == 100
    # test loss: 10 -> 10 * 10^-9 at 1000 (9 decades); a tenth is 0.9 decades: step 600
    assert out["t_clean"] == 600
    assert out["excluded_rise"] == pytest.approx(3.0)  # 1e-3 at 100 -> 1 at 600
    assert out["train_change"] == pytest.approx(0.0)
    assert out["excluded_rise_vs_train"] == pytest.approx(3.0)
    # restricted: 5 -> 5*10^-5 (5 decades), half-way 2.5 decades at step 650;
    # test: half of 9 decades (4.5) at step 800
    assert out["t_half_restricted"] == 650 and out["t_half_test"] == 800
    assert out["restricted_lead"] == pytest.approx((800 - 650) / (800 - 100))


def test_phases_without_memorisation_are_not_reached():
    progress, rows = synthetic()
    out = phases(progress, rows, train99=None)
    assert out["t_mem"] is None and out["restricted_lead"] is None


def test_smoke_logs_the_progress_measures(tmp_path):
    cfg = STUDY.preset("smoke").override("compare_grokfast=null")
    result = execute(STUDY, cfg, tmp_path, reraise=True)
    frame = read_metrics(result.path)
    names = set(frame["name"])
    for name in ("restricted_loss", "excluded_loss", "gini_embed", "key_share_unembed"):
        assert name in names
    steps = sorted(frame[frame["name"] == "excluded_loss"]["step"])
    assert steps[0] == 0 and steps[-1] == cfg.train.steps
    assert all(math.isfinite(v) for v in frame[frame["name"] == "excluded_loss"]["value"])
    saved = json.loads((result.path / "artifacts" / "progress_baseline_seed0.json").read_text())
    assert len(saved["neuron_frequency"]) == cfg.model.d_mlp
    metrics = result.summary["metrics"]
    assert metrics["n_key_freqs"] == len(saved["key_frequencies"])
    claims = {c["id"]: c for c in result.summary["claims"]}
    assert "excluded-loss-rises" in claims and "restricted-loss-leads" in claims


def test_other_operations_leave_the_progress_claims_not_tested(tmp_path):
    cfg = STUDY.preset("smoke").override("compare_grokfast=null", "task.op=mul")
    result = execute(STUDY, cfg, tmp_path, reraise=True)
    claims = {c["id"]: c for c in result.summary["claims"]}
    assert claims["excluded-loss-rises"]["passed"] is None
    assert claims["restricted-loss-leads"]["passed"] is None
    assert "excluded_loss" not in set(read_metrics(result.path)["name"])
