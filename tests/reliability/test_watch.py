"""Promise (issue 15): a run can be watched while it trains — ``fmlab show`` on an
unfinished run says whether it is running (whose process), its step, eta and latest
numbers; ``--follow`` tails a run being written by another process until it ends; and a
run whose process died says so and how to resume it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from tests.reliability.helpers import TOY, cli
from typer.testing import CliRunner

from fmlab.cli import app

runner = CliRunner()


def _show(run_dir, *args):
    result = runner.invoke(app, ["show", str(run_dir), "--json", *args])
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def _start(tmp_path, env):
    env = {**env, "FMLAB_LIVE_EVERY_S": "0.2"}
    args = ["run", "sweep-toy", *TOY, "--set", "steps=20", "--set", "sleep=8", "--out",
            tmp_path / "runs"]  # fmt: skip
    proc = subprocess.Popen(cli(*args), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 60
    while not list((tmp_path / "runs").glob("sweep-toy/*/metrics.live.jsonl")):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    (run_dir,) = (tmp_path / "runs" / "sweep-toy").iterdir()
    return proc, run_dir


def test_show_and_follow_a_run_written_by_another_process(tmp_path, toy_env):
    env, _ = toy_env
    proc, run_dir = _start(tmp_path, env)
    result, state = _show(run_dir)
    assert result.exit_code == 0, result.output
    assert state["status"] == "running" and state["pid"] == proc.pid
    assert state["label"] == "toy x=1.0" and state["total"] == 20 and "loss" in state["latest"]
    follow = subprocess.run(cli("show", run_dir, "--follow", "--interval", "0.2"), env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert follow.returncode == 0, follow.stderr
    assert "running (pid" in follow.stdout and "step" in follow.stdout  # progress lines …
    assert "sweep-toy" in follow.stdout and "holds" in follow.stdout  # … then the claims
    proc.wait(timeout=60)
    assert not (run_dir / "metrics.live.jsonl").exists()  # finished: the live files go


def test_a_run_whose_process_died_says_how_to_resume(tmp_path, toy_env):
    env, _ = toy_env
    proc, run_dir = _start(tmp_path, env)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    result, state = _show(run_dir)
    assert result.exit_code == 1 and state["status"] == "unfinished"
    text = runner.invoke(app, ["show", str(run_dir)]).output
    assert "not running" in text and "rerun its command" in text
