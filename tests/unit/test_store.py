import json
import os

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from fmlab.store import (
    Run,
    RunData,
    atomic_write_bytes,
    find_runs,
    load_runs,
    read_metrics,
    read_summary,
)


def finished_run(root, run_id="abc", status="completed", value=1.0):
    run = Run.start(root, "demo", run_id, {"lr": 0.1, "model": {"d": 4}})
    run.log(0, {"loss": 2.0}, seed=0)
    run.log(10, {"loss": 1.0, "acc": 0.5}, seed=0)
    run.finish(
        {
            "study": "demo",
            "run_id": run_id,
            "status": status,
            "config": run.config,
            "metrics": {"acc_final": value, "nan_metric": float("nan")},
            "claims": [{"id": "c", "passed": True}],
            "wall_s": 1.5,
        }
    )
    return run


def test_run_directory_contract(tmp_path):
    run = finished_run(tmp_path)
    assert run.path == tmp_path / "demo" / "abc"
    assert sorted(p.name for p in run.path.iterdir()) == [
        "artifacts",
        "config.json",
        "metrics.parquet",
        "summary.json",
    ]
    summary = read_summary(run.path)
    assert summary["status"] == "completed"
    assert summary["metrics"]["nan_metric"] is None  # JSON has no NaN
    metrics = read_metrics(run.path)
    assert list(metrics.columns) == ["step", "name", "value", "seed"] and len(metrics) == 3
    data = RunData(run.path)
    assert data.series("loss", seed=0)["value"].tolist() == [2.0, 1.0]


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["x.json"]


def test_unfinished_run_is_reset_and_finished_one_protected(tmp_path):
    run = Run.start(tmp_path, "demo", "r1", {})
    (run.artifacts / "partial.bin").write_bytes(b"junk")
    run.flush()
    again = Run.start(tmp_path, "demo", "r1", {})  # a killed attempt: start clean
    assert not (again.artifacts / "partial.bin").exists()
    assert not (again.path / "metrics.parquet").exists()
    finished_run(tmp_path, "r2")
    with pytest.raises(FileExistsError):
        Run.start(tmp_path, "demo", "r2", {})


def test_invalid_status_is_refused(tmp_path):
    run = Run.start(tmp_path, "demo", "r", {})
    with pytest.raises(ValueError, match="status"):
        run.finish({"status": "done"})
    assert read_summary(run.path) is None


def test_load_runs_table(tmp_path):
    finished_run(tmp_path, "a", value=0.1)
    finished_run(tmp_path, "b", status="diverged", value=0.2)
    Run.start(tmp_path, "demo", "c", {"lr": 1})  # unfinished
    frame = load_runs(tmp_path)
    assert isinstance(frame, pd.DataFrame) and sorted(frame["run_id"]) == ["a", "b"]
    assert set(frame["status"]) == {"completed", "diverged"}
    assert frame.set_index("run_id").loc["b", "metrics.acc_final"] == 0.2
    assert frame.set_index("run_id").loc["a", "config.model.d"] == 4
    assert len(load_runs(tmp_path, finished_only=False)) == 3
    assert len(find_runs(tmp_path)) == 3 and find_runs(tmp_path / "demo" / "a") == [
        tmp_path / "demo" / "a"
    ]


def test_weights_are_safetensors(tmp_path):
    run = Run.start(tmp_path, "demo", "w", {})
    path = run.save_weights("model", torch.nn.Linear(3, 2))
    assert path.suffix == ".safetensors"
    assert set(load_file(path)) == {"weight", "bias"}
    run.save_json("extra", {"x": [1.0, float("inf")]})
    assert json.loads((run.artifacts / "extra.json").read_text()) == {"x": [1.0, None]}


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_are_readable_as_the_umask_allows(tmp_path, umask, mode):
    """Runs directories are often shared: results get 0666 less the umask in force when
    they are written (mkstemp's 0600 made them owner-only), as open() would."""
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "x.json", b"{}")
        atomic_write_bytes(tmp_path / "x.json", b"[]")  # replacing keeps the rule
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == mode


def test_a_whole_run_under_umask_022_is_0644_files_and_0755_directories(toy, tmp_path):
    from fmlab.catalog import get_study
    from fmlab.report import write_run_report
    from fmlab.runner import execute

    study = get_study("sweep-toy")
    old = os.umask(0o022)
    try:
        result = execute(study, study.resolve("smoke", []), tmp_path / "runs")
        write_run_report(result.path, study)
    finally:
        os.umask(old)
    modes = {p: p.stat().st_mode & 0o777 for p in (tmp_path / "runs").rglob("*")}
    assert {m for p, m in modes.items() if p.is_file()} == {0o644}
    assert {m for p, m in modes.items() if p.is_dir()} == {0o755}
    assert (result.path / "summary.json") in modes and (result.path / "report.html") in modes
