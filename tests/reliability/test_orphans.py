"""Promise 3: a SIGKILLed sweep driver leaves no process behind — also when it dies while
its local workers are still starting (importing torch), the window in which the
parent-death signal was not yet armed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from tests.reliability.helpers import TOY, cli


def _carrying(marker: str) -> set[int]:
    """Pids of live processes whose environment holds ``marker`` (the sweep's tree)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":  # zombies are already dead
            found.add(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("seed", range(5))
def test_sigkilled_driver_leaves_no_process_after_5_s(tmp_path, toy_env, seed):
    env, _ = toy_env
    marker = f"FMLAB_TEST_TREE_{uuid.uuid4().hex}"
    env = {**env, marker: "1"}
    # delays from 0.05 s (workers not even spawned) through start-up (~2-4 s of imports)
    delay = [0.05, 0.6, 1.5, 2.5][seed] if seed < 4 else random.Random(seed).uniform(3, 6)
    driver = subprocess.Popen(
        cli("sweep", "sweep-toy", *TOY, "-j", "2", "--grid", "x=1,2,3,4", "--set", "sleep=4",
            "--out", tmp_path / "runs"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(delay)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 5
    while (alive := _carrying(marker)) and time.time() < deadline:
        time.sleep(0.1)
    for pid in alive:  # do not leak them into the rest of the test session
        os.kill(pid, signal.SIGKILL)
    assert alive == set(), f"still running {5:.0f} s after the driver died (delay {delay} s)"
