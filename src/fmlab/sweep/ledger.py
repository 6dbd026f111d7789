"""The sweep ledger: run directories say what is done, leases (:mod:`fmlab.lease`) say
who is running what.

A run is *done* when its ``summary.json`` exists (written last and atomically by the
runner); one with a live lease is *running*; anything else is *pending*.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from fmlab.lease import current_lease
from fmlab.store import SUMMARY

# ---- the state of a run -------------------------------------------------------------------

DONE_STATES = ("completed", "diverged")
STATES = ("completed", "diverged", "failed", "running", "pending")


@dataclass(frozen=True)
class RunState:
    """Where one run of a sweep stands; ``fingerprint`` identifies its summary file
    (None without one), so a worker can check that nothing changed since it was planned."""

    run_id: str
    state: str
    fingerprint: str | None = None
    owner: str | None = None


def fingerprint(run_dir: Path) -> str | None:
    """Identity of ``summary.json`` (inode, mtime, CRC of its bytes): an atomic rewrite
    changes it even within the filesystem's timestamp granularity."""
    path = Path(run_dir) / SUMMARY
    try:
        st = path.stat()
        crc = zlib.crc32(path.read_bytes())
    except FileNotFoundError:
        return None
    return f"{st.st_ino}:{st.st_mtime_ns}:{crc:08x}"


def run_state(run_dir: Path) -> RunState:
    run_dir = Path(run_dir)
    mark = fingerprint(run_dir)
    if mark is not None:
        try:
            status = json.loads((run_dir / SUMMARY).read_text()).get("status", "failed")
        except FileNotFoundError:  # replaced between stat and read: look again
            return run_state(run_dir)
        return RunState(run_dir.name, status, mark)
    lease = current_lease(run_dir)
    if lease is not None and lease.live():
        return RunState(run_dir.name, "running", None, lease.owner)
    return RunState(run_dir.name, "pending")
