"""The sweep ledger: run directories say what is done, leases (:mod:`fmlab.lease`) say
who is running what.

A run is *done* when its ``summary.json`` exists (written last and atomically by the
runner); one with a live lease is *running*; anything else is *pending*.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from fmlab.contracts import CorruptFileError
from fmlab.lease import current_lease
from fmlab.store import SUMMARY, read_summary, skip

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
    except OSError:  # not a readable file (a directory of that name): its stat identifies it
        st, crc = path.lstat(), 0
    return f"{st.st_ino}:{st.st_mtime_ns}:{crc:08x}"


def run_state(run_dir: Path) -> RunState:
    """Where a run stands. A summary that is not a valid summary counts as pending (the
    run is redone, its files kept aside), with a warning naming it."""
    run_dir = Path(run_dir)
    mark = fingerprint(run_dir)
    if mark is not None:
        try:
            summary = read_summary(run_dir)
        except CorruptFileError as e:
            _warn_once(e)
            return RunState(run_dir.name, "pending", mark)
        if summary is None:  # replaced between stat and read: look again
            return run_state(run_dir)
        return RunState(run_dir.name, summary["status"], mark)
    lease = current_lease(run_dir)
    if lease is not None and lease.live():
        return RunState(run_dir.name, "running", None, lease.owner)
    return RunState(run_dir.name, "pending")


_warned: set[str] = set()


def _warn_once(error: CorruptFileError) -> None:
    """A driver scans its ledger many times: say so once per file and process."""
    if str(error.path) not in _warned:
        _warned.add(str(error.path))
        skip(error, "running it again")
