"""The grokking study: batched training equals one-at-a-time training; a sweep's
run_batch gives each config the run it would have had alone."""

import numpy as np
import pytest

from fmlab.catalog import get_study
from fmlab.runner import execute, execute_batch
from fmlab.store import read_metrics

STUDY = get_study("grokking")
SMOKE = STUDY.preset("smoke").override("seeds=[0,1]", "train.steps=40")


def curves(path):
    frame = read_metrics(path).sort_values(["variant", "seed", "name", "step"])
    return frame.reset_index(drop=True)


def test_batched_seeds_and_variants_match_sequential_training(tmp_path):
    a = execute(STUDY, SMOKE.override("batched=true"), tmp_path, reraise=True)
    b = execute(STUDY, SMOKE.override("batched=false"), tmp_path, reraise=True)
    ca, cb = curves(a.path), curves(b.path)
    assert len(ca) == len(cb) and (ca["step"] == cb["step"]).all()
    np.testing.assert_allclose(ca["value"], cb["value"], rtol=1e-4, atol=1e-5)
    for key in ("step_train_acc_99", "step_test_acc_95", "steps_run"):
        assert a.summary["metrics"][key] == b.summary["metrics"][key]


def test_run_batch_matches_separate_runs(tmp_path):
    cfgs = [SMOKE.override(f"seeds=[{s}]", "compare_grokfast=null") for s in (3, 4, 5)]
    cfgs[2] = cfgs[2].override("train.lr=1e-2", "train.weight_decay=0.3")
    batched = execute_batch(STUDY, cfgs, tmp_path / "batch")
    alone = [execute(STUDY, c, tmp_path / "alone") for c in cfgs]
    for b, s in zip(batched, alone, strict=True):
        assert b.path.name == s.path.name and b.status == s.status == "completed"
        np.testing.assert_allclose(
            curves(b.path)["value"], curves(s.path)["value"], rtol=1e-4, atol=1e-5
        )
        assert b.summary["metrics"]["train_acc_final"] == pytest.approx(
            s.summary["metrics"]["train_acc_final"], abs=1e-9
        )
