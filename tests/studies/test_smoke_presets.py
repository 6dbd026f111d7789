"""Every registered study's smoke preset runs end to end (new studies are picked up
automatically), writes the run-directory contract, and is bit-for-bit reproducible."""

import pandas as pd
import pytest

from fmlab.catalog import all_studies
from fmlab.report import write_run_report
from fmlab.runner import execute
from fmlab.store import read_metrics, read_summary

STUDIES = all_studies()


@pytest.mark.parametrize("study", STUDIES, ids=[s.name for s in STUDIES])
def test_smoke_preset_runs_and_reports(study, tmp_path):
    result = execute(study, study.preset("smoke"), tmp_path, preset="smoke", reraise=True)
    assert result.status == "completed"
    summary = read_summary(result.path)
    assert summary["study"] == study.name and summary["run_id"] == result.path.name
    assert [c["id"] for c in summary["claims"]] == [c.id for c in study.claims]
    assert all(c["passed"] in (True, False, None) for c in summary["claims"])
    metrics = read_metrics(result.path)
    assert {"step", "name", "value"} <= set(metrics.columns) and len(metrics) > 0
    report = write_run_report(result.path, study)
    assert report.exists() and (result.path / "artifacts" / "figures").is_dir()


@pytest.mark.parametrize("study", STUDIES, ids=[s.name for s in STUDIES])
def test_same_config_gives_bit_identical_metrics(study, tmp_path):
    """… with --device cpu and with --device auto (the CPU here; on a GPU machine the two
    would differ in the last bits, which is why the device is not in the run id)."""
    cfg = study.preset("smoke")
    a = execute(study, cfg, tmp_path / "a", device="cpu")
    b = execute(study, cfg, tmp_path / "b", device="auto")
    assert a.summary["env"]["device"] == "cpu"
    assert a.path.name == b.path.name  # same config, same run id
    pd.testing.assert_frame_equal(read_metrics(a.path), read_metrics(b.path))
    assert a.summary["metrics"] == b.summary["metrics"]


@pytest.mark.parametrize("study", STUDIES, ids=[s.name for s in STUDIES])
def test_every_study_is_documented_and_its_claims_read_its_metrics(study, tmp_path):
    """A study cites its paper and explains itself; every claim names a metric that its
    smoke run reports (a claim on a metric nothing writes could never hold)."""
    assert study.citation and study.title and study.description
    result = execute(study, study.preset("smoke"), tmp_path)
    reported = set(result.summary["metrics"])
    for claim in study.claims:
        assert claim.source and claim.statement
        assert claim.metric in reported or claim.optional, claim.id
