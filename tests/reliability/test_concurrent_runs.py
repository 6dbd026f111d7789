"""Promise 2: the same config started twice at once runs once. ``fmlab run`` takes the run
directory's lease as sweep workers do; the second process waits, says for whom, and
reuses the first's result — beside another ``fmlab run`` or beside a running sweep."""

from __future__ import annotations

import json
import subprocess
import time

from tests.reliability.helpers import TOY, cli, starts


def _start(args, env):
    return subprocess.Popen(cli(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _start_logged(args, env, log):
    """Stderr goes to a file the test can poll while the process runs."""
    return subprocess.Popen(cli(*args), env=env, stdout=subprocess.PIPE, stderr=log.open("w"),
                            text=True)  # fmt: skip


def _wait_for_text(path, text, timeout=120):
    deadline = time.time() + timeout
    while text not in path.read_text():
        assert time.time() < deadline, f"never said {text!r}: {path.read_text()!r}"
        time.sleep(0.05)


def _wait_started(marks, n=1, timeout=60):
    deadline = time.time() + timeout
    while len(starts(marks)) < n:
        assert time.time() < deadline, "the first run never started"
        time.sleep(0.02)


def test_two_fmlab_runs_of_one_config_execute_it_once(tmp_path, toy_env):
    env, marks = toy_env
    (marks / "hold").touch()  # the first run does not finish before the second has waited
    args = ["run", "sweep-toy", *TOY, "--out", tmp_path / "runs", "--json"]
    first = _start(args, env)
    _wait_started(marks)
    log = tmp_path / "second.err"
    second = _start_logged(args, env, log)
    _wait_for_text(log, "waiting for it")
    (marks / "hold").unlink()
    out1, err1 = first.communicate(timeout=120)
    out2, _ = second.communicate(timeout=120)
    err2 = log.read_text()
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    a, b = json.loads(out1), json.loads(out2)
    assert len(starts(marks)) == 1  # executed exactly once
    assert a["path"] == b["path"] and not a["reused"] and b["reused"]
    assert a["metrics"] == b["metrics"]
    assert "is being run by pid" in err2 and "waiting for it" in err2


def test_fmlab_run_beside_a_sweep_running_that_config_waits_for_it(tmp_path, toy_env):
    env, marks = toy_env
    (marks / "hold").touch()
    runs = tmp_path / "runs"
    sweep = _start(["sweep", "sweep-toy", *TOY, "--out", runs], env)
    _wait_started(marks)
    log = tmp_path / "single.err"
    single = _start_logged(["run", "sweep-toy", *TOY, "--out",
                            runs / "sweeps" / "sweep-toy-smoke", "--json"], env, log)  # fmt: skip
    _wait_for_text(log, "waiting for it")
    (marks / "hold").unlink()
    sweep.communicate(timeout=120)
    out, _ = single.communicate(timeout=120)
    assert sweep.returncode == 0 and single.returncode == 0, log.read_text()
    assert len(starts(marks)) == 1 and json.loads(out)["reused"]
