"""Promise 7 (a full disk): a run that cannot write its results is recorded ``failed`` with
the reason, and nothing is half-written (no temporary or truncated files). Needs root to
mount a small tmpfs; skipped otherwise."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.reliability.helpers import TOY, cli


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Leave about ``leave`` bytes free on ``disk``."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def _run(disk: Path, env: dict, *sets: str):
    args = ["run", "sweep-toy", *TOY, "--out", disk / "runs", "--json"]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(cli(*args), env=env, capture_output=True, text=True)


def _leftovers(disk: Path) -> list[str]:
    return sorted(str(p.relative_to(disk)) for p in disk.rglob("*") if p.name.endswith(".tmp"))


@pytest.mark.parametrize(
    ("leave", "sets"),
    [
        (64 * 1024, ["blob=400000"]),  # an artifact does not fit; the small files do
        (24 * 1024, ["steps=40000"]),  # the metrics table does not fit either
    ],
)
def test_a_full_disk_records_a_failed_run_and_leaves_no_temporary_file(small_disk, toy_env,
                                                                       leave, sets):  # fmt: skip
    env, _ = toy_env
    fill(small_disk, leave)
    result = _run(small_disk, env, *sets)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    on_disk = json.loads((Path(summary["path"]) / "summary.json").read_text())
    assert on_disk["status"] == "failed"
    assert _leftovers(small_disk) == []
    assert not (Path(summary["path"]) / "artifacts" / "blob.bin").exists()
