"""``fmlab sweep | status | table`` and ``fmlab report SWEEP_DIR`` from the command line."""

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fmlab.cli import app

runner = CliRunner()
TOY = ["sweep", "sweep-toy", "--import", "fmlab_sweep_toy", "-p", "smoke", "--threads", "1"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def said(result) -> str:
    """The output with rich's line wrapping undone."""
    return re.sub(r"\s+", " ", result.output)


def test_sweep_status_table_and_report(toy, tmp_path):
    result = invoke(*TOY, "--grid", "x=1,2", "--seeds", "3", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total"] == 6 and data["completed"] == 6 and data["already_done"] == 0
    directory = data["directory"]

    status = json.loads(invoke("status", "sweep-toy-smoke", "--out", tmp_path, "--json").output)
    assert status["done"] == 6 and status["pending"] == status["running"] == 0
    watched = invoke("status", directory, "--watch")  # a finished sweep: returns at once
    assert watched.exit_code == 0 and re.search(r"│\s+6 │\s+6 │\s+6 │", watched.output)

    rows = json.loads(invoke("table", directory, "--format", "json").output)["rows"]
    assert [(r["x"], r["metric"], r["n"]) for r in rows] == [(1.0, "score", 3), (2.0, "score", 3)]
    assert json.loads(invoke("table", directory, "--json").output)["rows"] == rows
    csv = pd.read_csv(io.StringIO(invoke("table", directory, "--format", "csv").output))
    assert list(csv.columns[:3]) == ["x", "metric", "mean"]
    assert csv["mean"].tolist() == pytest.approx([r["mean"] for r in rows])
    shown = invoke("table", directory, "--metric", "score", "--metric", "x_seen")
    assert shown.exit_code == 0 and "±" in shown.output and "x_seen" in shown.output
    typo = invoke("table", directory, "--metric", "scroe")
    assert typo.exit_code == 2 and "Did you mean 'score'?" in typo.output
    typo = invoke("table", directory, "--by", "sed")
    assert typo.exit_code == 2 and "Did you mean 'seed'" in typo.output

    report = invoke("report", directory, "--json")
    assert report.exit_code == 0, report.output
    page = json.loads(report.stdout)["sweeps"][0]
    html = Path(page).read_text()
    assert "score_vs_x" in html
    assert "data:image/png;base64," in html and not re.search(r"(src|href)=['\"]https?://", html)
    assert len(json.loads(report.stdout)["reports"]) == 6

    again = json.loads(
        invoke(*TOY, "--grid", "x=1,2", "--seeds", "3", "--out", tmp_path, "--json").output
    )
    assert again["ran"] == 0 and again["already_done"] == 6
    resumed = json.loads(
        invoke("sweep", "--resume", "sweep-toy-smoke", "--out", tmp_path, "--json").output
    )
    assert resumed["ran"] == 0 and resumed["total"] == 6


def test_dry_run_lists_the_runs_and_starts_nothing(toy, tmp_path):
    result = invoke(
        *TOY, "--zip", "x=1,2", "--zip", "steps=4,5", "--out", tmp_path / "r", "--dry-run", "--json"
    )
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(r["x"], r["steps"]) for r in runs] == [(1, 4), (2, 5)]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--grid", "model.d_modle=1,2"], ["model.d_modle", "Did you mean d_model"]),
        (["--grid", "model.d_model=8,abc"], ["sweep point 1", "model.d_model"]),
        (["--random", "train.lr=normal:0:1"], ["unknown distribution 'normal'"]),
        (["--seeds", "0"], ["seeds", "greater than or equal to 1"]),
        (["--executor", "serial", "-j", "2"], ["serial executor runs one job"]),
        (["-j", "2", "--threads", "64"], ["exceeds the", "cores"]),
        (["--ensemble", "maybe"], ["--ensemble 'maybe'"]),
        (["--lease-ttl", "0"], ["--lease-ttl must be a finite number > 0"]),
        (["--ray-return"], ["--ray-return applies to --executor ray"]),
        (["--executor", "mpi"], ["unknown executor 'mpi'"]),
        (["--executor", "slurm", "--slurm-opt", "oops"], ["--slurm-opt 'oops'", "key=value"]),
        (["--executor", "slurm", "--slurm-cluster", "pbs"], ["--slurm-cluster 'pbs'"]),
        (["-p", "quik"], ["Did you mean 'quick'"]),
    ],
)
def test_bad_sweeps_fail_before_running_with_one_clear_error(args, fragments, tmp_path):
    result = invoke("sweep", "grokking", "-p", "smoke", *args, "--out", tmp_path)
    assert result.exit_code == 2, result.output
    text = said(result)
    for fragment in fragments:
        assert fragment in text
    assert "Traceback" not in result.output
    assert not list(tmp_path.rglob("config.json"))


def test_changed_spec_and_unknown_sweeps_are_clear_errors(toy, tmp_path):
    assert invoke(*TOY, "--grid", "x=1", "--out", tmp_path).exit_code == 0
    changed = invoke(*TOY, "--grid", "x=1,3", "--out", tmp_path)
    assert changed.exit_code == 2 and "different spec" in said(changed)
    assert "grid.x: [1] → [1, 3]" in said(changed)
    assert invoke(*TOY, "--grid", "x=1,3", "--out", tmp_path, "--allow-changed").exit_code == 0
    missing = invoke("status", "sweep-toy-smok", "--out", tmp_path)
    assert missing.exit_code == 2 and "Did you mean 'sweep-toy-smoke'" in said(missing)
    both = invoke("sweep", "grokking", "--resume", "sweep-toy-smoke", "--out", tmp_path)
    assert both.exit_code == 2 and "--resume takes the spec from sweep.json" in said(both)


def test_a_failed_run_makes_the_exit_status_1(toy, tmp_path):
    result = invoke(*TOY, "--zip", "x=1,2", "--zip", "fail=false,true", "--out", tmp_path)
    assert result.exit_code == 1
    assert "toy failure at x=2.0" in said(result)
