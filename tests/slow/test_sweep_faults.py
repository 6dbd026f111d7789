"""Sweeps under fault injection, driven through the real command line in subprocesses:
SIGKILL at seeded random points then resume; two drivers at once; Ctrl-C then rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fmlab.cli import app
from fmlab.lease import current_lease
from fmlab.stats import format_mean_ci
from fmlab.store import load_runs, read_metrics, read_summary
from fmlab.sweep.ledger import fingerprint
from fmlab.sweep.record import read_record

PLUGINS = Path(__file__).parents[1] / "plugins"
TOY = ["sweep", "sweep-toy", "--import", "fmlab_sweep_toy", "-p", "smoke", "--threads", "1"]


def env_for(marks: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "FMLAB_TOY_MARKS": str(marks), "OMP_NUM_THREADS": "1"}


def fmlab(*args) -> list[str]:
    return [sys.executable, "-m", "fmlab.cli", *[str(a) for a in args]]


def marks(folder: Path, kind: str) -> list[str]:
    log = folder / "marks.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split()[1] for line in lines if line.startswith(kind + " ")]


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)


def finished(sweep: Path) -> dict[str, str]:
    """Run id → summary fingerprint of every finished run (each summary must parse)."""
    out = {}
    for run_dir in sorted((sweep / "sweep-toy").glob("*")):
        summary = read_summary(run_dir)  # raises if a summary were torn
        if summary is not None:
            assert summary["status"] == "completed" and summary["run_id"] == run_dir.name
            out[run_dir.name] = fingerprint(run_dir)
    return out


def expected_score(x: float, seed: int) -> float:
    return 10 * x + float(torch.randn(4, generator=torch.Generator().manual_seed(seed)).sum())


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_loses_and_duplicates_nothing(tmp_path):
    rng = np.random.default_rng(20240501)
    folder, out = tmp_path / "marks", tmp_path / "runs"
    folder.mkdir()
    args = [*TOY, "--grid", "x=1,2,3,4", "--seeds", "3", "--set", "sleep=0.15", "--out", out]
    sweep = out / "sweeps" / "sweep-toy-smoke"
    kept: dict[str, str] = {}
    for _ in range(3):
        before = len(marks(folder, "start"))
        target = before + int(rng.integers(1, 4))  # kill inside the 1st-3rd run it starts
        proc = subprocess.Popen(fmlab(*args), env=env_for(folder), stdout=subprocess.DEVNULL)
        wait_for(lambda t=target, p=proc: len(marks(folder, "start")) >= t or p.poll() is not None)
        time.sleep(float(rng.uniform(0.0, 0.2)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = finished(sweep)
        assert all(now[r] == fp for r, fp in kept.items())  # finished runs untouched …
        assert not set(marks(folder, "start")[before:]) & kept.keys()  # … and not rerun
        kept = now
    starts_before_resume = Counter(marks(folder, "start"))
    final = subprocess.run(
        fmlab(*args, "--json"), env=env_for(folder), capture_output=True, text=True, check=True
    )
    result = json.loads(final.stdout)
    assert result["already_done"] == len(kept) and result["ran"] == 12 - len(kept)

    record = read_record(sweep)
    ids = [r["run_id"] for r in record["runs"]]
    assert sorted(p.name for p in (sweep / "sweep-toy").iterdir()) == sorted(ids)
    assert finished(sweep).keys() == set(ids)
    assert all(finished(sweep)[r] == fp for r, fp in kept.items())
    starts = Counter(marks(folder, "start"))
    assert all(starts[r] == starts_before_resume[r] for r in kept)  # never rerun when done
    # each kill cut at most one run short (rerun on resume); with kills placed inside runs,
    # at least one did (else this test would not have tested a mid-run kill)
    assert 12 < sum(starts.values()) <= 12 + 3
    table = load_runs(sweep)  # what reports and tables read: only finished runs
    assert len(table) == 12 and set(table["status"]) == {"completed"}
    for entry in record["runs"]:
        run_dir = sweep / "sweep-toy" / entry["run_id"]
        x, seed = entry["values"]["x"], entry["values"]["seed"]
        summary = read_summary(run_dir)
        assert summary["metrics"]["score"] == pytest.approx(expected_score(x, seed), rel=1e-6)
        assert len(read_metrics(run_dir)) == 4
        assert not list(run_dir.rglob("*.tmp")) and not current_lease(run_dir)


@pytest.mark.slow
def test_two_drivers_started_at_once_complete_the_sweep_without_rerunning(tmp_path):
    folder, out = tmp_path / "marks", tmp_path / "runs"
    folder.mkdir()
    args = [*TOY, "--grid", "x=1,2,3,4", "--seeds", "3", "--set", "sleep=0.1", "--out", out]
    procs = [
        subprocess.Popen(
            fmlab(*args, "--json"), env=env_for(folder), stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [json.loads(p.communicate()[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sum(r["completed"] for r in results) == 12
    starts = Counter(marks(folder, "start"))
    assert len(starts) == 12 and set(starts.values()) == {1}
    configs = list((out / "sweeps" / "sweep-toy-smoke" / "sweep-toy").glob("*/config.json"))
    assert len(configs) == 12


@pytest.mark.slow
def test_grokking_sweep_ctrl_c_then_rerun_finishes_only_the_missing_runs(tmp_path):
    out = tmp_path / "runs"
    args = ["sweep", "grokking", "--preset", "smoke", "--seeds", "4", "-j", "2", "--out", out]
    sweep = out / "sweeps" / "grokking-smoke"
    proc = subprocess.Popen(
        fmlab(*args, "--ensemble", "off"),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: any(sweep.glob("grokking/*/summary.json")) or proc.poll() is not None, 300)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1]
    run_dirs = sorted(sweep.glob("grokking/*"))
    done = [d for d in run_dirs if read_summary(d) is not None]
    if proc.returncode == 0:  # it finished before the signal landed: nothing to resume
        pytest.skip("the sweep finished before SIGINT; rerun on a slower machine")
    assert proc.returncode == 130 and "interrupted" in stderr
    assert 1 <= len(done) < 4
    for d in run_dirs:
        lease = current_lease(d)
        assert lease is None or not lease.live()  # released, nothing left claimed
    before = {d.name: fingerprint(d) for d in done}

    rerun = subprocess.run(
        fmlab(*args, "--json"),
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["already_done"] == len(done) and result["ran"] == 4 - len(done)
    assert {d: fingerprint(sweep / "grokking" / d) for d in before} == before

    table = CliRunner().invoke(app, ["table", str(sweep), "--format", "json"])
    acc = next(r for r in json.loads(table.stdout)["rows"] if r["metric"] == "test_acc_final")
    assert acc["n"] == 4 and acc["low"] <= acc["mean"] <= acc["high"]
    shown = CliRunner().invoke(app, ["table", str(sweep)])
    assert format_mean_ci(acc["mean"], acc["low"], acc["high"]) in shown.output  # "m ± h"
