"""Leases: atomic claims with heartbeats and expiry; run states read from the ledger."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from fmlab.errors import FmlabWarning
from fmlab.lease import LeaseKeeper, current_lease, host_id, try_acquire
from fmlab.store import SUMMARY, Run, atomic_write_json
from fmlab.sweep.ledger import run_state


def foreign_lease(run_dir, generation=0, *, age=0.0, ttl=60.0, host="elsewhere", pid=1):
    """A lease written by another machine (or process), ``age`` seconds old."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f".lease-{generation}"
    path.write_text(json.dumps({"owner": f"{host}:{pid}:x", "host": host, "pid": pid, "ttl": ttl}))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_a_live_lease_excludes_everyone_else(tmp_path):
    first = try_acquire(tmp_path / "r", ttl=30)
    assert first is not None and first.generation == 0
    assert try_acquire(tmp_path / "r", ttl=30) is None
    info = current_lease(tmp_path / "r")
    assert info.owner == first.owner and info.host == host_id() and info.pid == os.getpid()
    assert info.live()


def test_released_unfinished_lease_is_kept_expired_and_the_next_generation_follows(tmp_path):
    lease = try_acquire(tmp_path / "r", ttl=30)
    lease.release()
    assert lease.path.exists() and lease.path.stat().st_mtime == 0
    assert not current_lease(tmp_path / "r").live()
    successor = try_acquire(tmp_path / "r", ttl=30)
    assert successor.generation == 1
    assert not lease.path.exists()  # the expired predecessor was tidied up


def test_released_finished_lease_is_deleted(tmp_path):
    lease = try_acquire(tmp_path / "r", ttl=30)
    (tmp_path / "r" / SUMMARY).write_text("{}")
    lease.release()
    assert not list((tmp_path / "r").glob(".lease*"))


def test_an_expired_foreign_lease_is_taken_over_but_a_fresh_one_is_not(tmp_path):
    foreign_lease(tmp_path / "fresh", age=1.0, ttl=60)
    assert try_acquire(tmp_path / "fresh") is None
    foreign_lease(tmp_path / "old", age=61.0, ttl=60)
    taken = try_acquire(tmp_path / "old")
    assert taken is not None and taken.generation == 1


def test_a_lease_of_a_dead_local_process_expires_at_once(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    dead_pid = int(proc.stdout)
    foreign_lease(tmp_path / "r", age=0.0, ttl=3600, host=host_id(), pid=dead_pid)
    assert not current_lease(tmp_path / "r").live()
    assert try_acquire(tmp_path / "r") is not None


def test_of_many_simultaneous_takeovers_exactly_one_wins(tmp_path):
    for trial in range(5):
        run_dir = tmp_path / f"r{trial}"
        foreign_lease(run_dir, generation=3, age=100.0, ttl=10)
        barrier = threading.Barrier(8)
        won = []

        def contend(run_dir=run_dir, barrier=barrier, won=won):
            barrier.wait()
            lease = try_acquire(run_dir, ttl=30)
            if lease is not None:
                won.append(lease)

        threads = [threading.Thread(target=contend) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1 and won[0].generation == 4
        assert current_lease(run_dir).owner == won[0].owner


def test_heartbeat_refreshes_and_notices_a_takeover(tmp_path):
    lease = try_acquire(tmp_path / "r", ttl=30)
    os.utime(lease.path, (1000.0, 1000.0))
    lease.heartbeat()
    assert time.time() - lease.path.stat().st_mtime < 30 and not lease.lost
    foreign_lease(tmp_path / "r", generation=1, age=0.0)  # someone took it over
    with pytest.warns(RuntimeWarning, match="taken over"):
        lease.heartbeat()
    assert lease.lost


def test_the_keeper_thread_heartbeats_until_closed(tmp_path):
    with LeaseKeeper() as keeper:
        lease = keeper.add(try_acquire(tmp_path / "r", ttl=0.4))
        os.utime(lease.path, (1000.0, 1000.0))
        deadline = time.time() + 10
        while lease.path.stat().st_mtime == 1000.0 and time.time() < deadline:
            time.sleep(0.02)
        assert lease.path.stat().st_mtime > 1000.0
    assert lease.released and lease.path.stat().st_mtime == 0


def test_run_start_keeps_the_lease_when_it_resets_a_killed_run(tmp_path):
    lease = try_acquire(tmp_path / "toy" / "abc", ttl=30)
    Run.start(tmp_path, "toy", "abc", {"x": 1})
    (tmp_path / "toy" / "abc" / "metrics.parquet").write_text("partial")
    Run.start(tmp_path, "toy", "abc", {"x": 1})  # the retry resets the leftovers …
    assert lease.path.exists()  # … but not the claim
    assert not (tmp_path / "toy" / "abc" / "metrics.parquet").exists()


def test_run_state_reads_the_ledger(tmp_path):
    run_dir = tmp_path / "r"
    assert run_state(run_dir).state == "pending"
    lease = try_acquire(run_dir, ttl=30)
    state = run_state(run_dir)
    assert state.state == "running" and state.owner == lease.owner
    summary = {"study": "s", "run_id": "r", "status": "failed"}
    atomic_write_json(run_dir / SUMMARY, summary)
    failed = run_state(run_dir)
    assert failed.state == "failed" and failed.fingerprint is not None
    atomic_write_json(run_dir / SUMMARY, summary | {"status": "completed"})
    done = run_state(run_dir)
    assert done.state == "completed" and done.fingerprint != failed.fingerprint
    atomic_write_json(run_dir / SUMMARY, {"status": "completed"})  # not a summary: no study
    with pytest.warns(FmlabWarning, match="is not a valid summary.json"):
        broken = run_state(run_dir)
    assert broken.state == "pending" and broken.fingerprint not in (None, done.fingerprint)
