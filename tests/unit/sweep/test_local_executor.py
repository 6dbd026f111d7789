"""The ``local`` executor: spawned workers write the same ledger as the serial one; a dead
worker's task is reported and the sweep goes on; an interrupt stops workers cleanly."""

import os
import signal
import threading
import time

import pandas as pd
import pytest

from fmlab.errors import UserInputError
from fmlab.lease import current_lease, pid_alive
from fmlab.parallel import default_threads
from fmlab.store import read_metrics, read_summary
from fmlab.sweep import SweepInterrupted, run_sweep, sweep_spec
from fmlab.sweep.executors import plan_threads
from fmlab.sweep.tables import sweep_status


def test_thread_plan_keeps_jobs_times_threads_within_the_free_cores():
    assert default_threads(2, cores=2, busy=0) == 1
    assert default_threads(1, cores=8, busy=0) == 8
    assert default_threads(1, cores=2, busy=1) == 1  # another process holds a core
    assert default_threads(2, cores=8, busy=3) == 2
    assert default_threads(4, cores=2, busy=5) == 1  # never fewer than one
    assert plan_threads(2, None, cores=2) == 1
    assert plan_threads(3, 2, cores=8) == 2
    with pytest.raises(UserInputError, match="exceeds the 8 cores"):
        plan_threads(4, 3, cores=8)


def test_local_pool_matches_serial_and_survives_a_dead_worker(toy, tmp_path):
    ok = sweep_spec("sweep-toy", "smoke", grid={"x": [1.0, 3.0, 4.0]})
    serial = run_sweep(ok, directory=tmp_path / "serial", threads=1)
    with_crash = sweep_spec(
        "sweep-toy", "smoke", zip={"x": [1.0, 2.0, 3.0, 4.0], "die": [False, True, False, False]}
    )
    pooled = run_sweep(with_crash, directory=tmp_path / "pool", executor="local", jobs=2, threads=1)
    crashed = [o for o in pooled.outcomes if o.status == "crashed"]
    assert len(crashed) == 1 and "exit code 3" in crashed[0].error
    completed = {o.run_id for o in pooled.outcomes if o.status == "completed"}
    assert completed == {o.run_id for o in serial.outcomes}  # same configs, same run ids
    worker_pids = {int(parts[2]) for parts in toy.lines() if parts[1] in completed}
    assert os.getpid() in worker_pids and len(worker_pids) >= 2  # serial here, pool elsewhere
    for run_id in completed:
        a, b = (tmp_path / d / "sweep-toy" / run_id for d in ("pool", "serial"))
        pd.testing.assert_frame_equal(read_metrics(a), read_metrics(b))
        assert read_summary(a)["metrics"] == read_summary(b)["metrics"]
    status = sweep_status(tmp_path / "pool")
    assert status.counts["pending"] == 1 and status.counts["running"] == 0  # dead pid: free


def test_ctrl_c_stops_the_pool_and_releases_the_workers_claims(toy, tmp_path):
    spec = sweep_spec("sweep-toy", "smoke", grid={"x": [1.0, 2.0]}, seeds=2, overrides=["sleep=2"])

    def ctrl_c_once_both_workers_run():
        deadline = time.time() + 60
        while len(toy.count("start")) < 2 and time.time() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)  # what a terminal sends the driver

    threading.Thread(target=ctrl_c_once_both_workers_run, daemon=True).start()
    with pytest.raises(SweepInterrupted) as info:
        run_sweep(spec, directory=tmp_path / "s", executor="local", jobs=2, threads=1)
    assert info.value.result.interrupted and info.value.result.ran == 0
    started = list(toy.count("start"))
    assert len(started) == 2
    for run_id in started:
        run_dir = tmp_path / "s" / "sweep-toy" / run_id
        assert read_summary(run_dir) is None
        assert current_lease(run_dir).mtime == 0  # released by the worker, not just dead
    for pid in {int(parts[2]) for parts in toy.lines()}:
        assert not pid_alive(pid)
    assert sweep_status(tmp_path / "s").counts["pending"] == 4
