"""Leases: who is running a run directory right now (a sweep's worker, or ``fmlab run``).

A run being executed carries a **lease**: a file ``.lease-<generation>`` in its run
directory, created atomically (``link(2)`` of a fully written temporary file, which
fails if the name exists — the NFS-safe form of ``O_EXCL``), holding its owner (host, pid,
a uuid) and a TTL. A heartbeat thread refreshes the file's mtime every TTL/4.

Taking over a lease is also one atomic create: whoever sees that the newest lease
(highest generation) is expired — older than its TTL, released (mtime 0), or owned by a
dead process on this host — creates generation + 1; of several contenders exactly one
succeeds. Generations never go down while a run is unfinished (an interrupted owner
releases by zeroing its mtime, not by deleting), so two holders cannot coexist through a
reset. A holder that stalls for longer than its TTL loses its lease (its heartbeat notices
and warns); as with every lease without fencing, it may still finish its run, but the
summary is written atomically, so the run directory holds one complete result, never a
torn one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmlab.store import LEASE_PREFIX, SUMMARY

LEASE_RE = re.compile(r"^\.lease-(\d+)$")
DEFAULT_TTL = 60.0
NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


def host_id() -> str:
    """This machine *and* PID namespace: two containers with the same hostname do not
    mistake each other's pids."""
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/pidns{ns}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass(frozen=True)
class LeaseInfo:
    """The newest lease of a run directory, as read from disk."""

    path: Path
    generation: int
    owner: str
    host: str
    pid: int
    ttl: float
    mtime: float

    def live(self, now: float | None = None) -> bool:
        """Held by a running owner: not released, not expired, not a dead local pid."""
        if self.mtime <= 0:
            return False
        if self.host == host_id() and self.pid > 0 and not pid_alive(self.pid):
            return False
        return (time.time() if now is None else now) - self.mtime < self.ttl


def _leases(run_dir: Path) -> list[tuple[int, Path]]:
    try:
        names = os.listdir(run_dir)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), run_dir / n) for n in names if (m := LEASE_RE.match(n))]
    return sorted(found)


def current_lease(run_dir: Path) -> LeaseInfo | None:
    """The newest lease file of ``run_dir`` (live or not), or None."""
    for _ in range(5):  # a file may vanish between listing and reading: look again
        leases = _leases(Path(run_dir))
        if not leases:
            return None
        generation, path = leases[-1]
        try:
            mtime = path.stat().st_mtime
            data = _parse(path.read_bytes())
        except FileNotFoundError:
            continue
        except OSError:  # not a readable file (a directory of that name …): no owner known
            mtime, data = path.lstat().st_mtime, {}
        return LeaseInfo(
            path=path,
            generation=generation,
            owner=str(data.get("owner", "?")),
            host=str(data.get("host", "?")),
            pid=_number(data.get("pid"), int, -1),
            ttl=_number(data.get("ttl"), float, DEFAULT_TTL),
            mtime=mtime,
        )
    return None


def _parse(raw: bytes) -> dict[str, Any]:
    """A lease file's fields; {} for a torn (O_EXCL fallback, mid-write) or foreign file,
    whose owner is then unknown and which counts as live until its TTL runs out."""
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any, kind: type, default: Any) -> Any:
    try:
        out = kind(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return out if out == out and out not in (float("inf"), float("-inf")) else default


def describe(info: LeaseInfo, now: float | None = None) -> str:
    """``pid 812 on host a/pidns…, renewed 3 s ago, expires in 57 s unless renewed``."""
    now = time.time() if now is None else now
    who = f"pid {info.pid} on host {info.host}" if info.pid > 0 else f"owner {info.owner}"
    if info.mtime <= 0:
        return f"{who} (released)"
    age = now - info.mtime
    left = info.ttl - age
    expiry = f"expires in {left:.0f} s unless renewed" if left > 0 else "expired"
    return f"{who}, renewed {age:.0f} s ago, {expiry}"


def break_lease(run_dir: Path, *, force: bool = False) -> LeaseInfo | None:
    """Release ``run_dir``'s newest lease as its owner would (mtime 0, so the next taker
    creates the next generation). A live lease is broken only with ``force`` — its holder
    then loses it (its heartbeat warns) and may still finish, writing its summary
    atomically. Returns the lease broken, or None."""
    info = current_lease(run_dir)
    if info is None or info.mtime <= 0 or (info.live() and not force):
        return None
    with contextlib.suppress(FileNotFoundError):
        os.utime(info.path, (0, 0))
    return info


class Lease:
    """A lease this process holds on one run directory."""

    def __init__(self, path: Path, generation: int, owner: str, ttl: float):
        self.path, self.generation, self.owner, self.ttl = path, generation, owner, ttl
        self.lost = False
        self.released = False

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def heartbeat(self) -> None:
        """Refresh the mtime; notice (and warn once) if someone took the lease over."""
        if self.released or self.lost:
            return
        newest = _leases(self.run_dir)
        try:
            os.utime(self.path, None)
        except FileNotFoundError:
            newest = []
        if not newest or newest[-1][0] != self.generation:
            self.lost = True
            warnings.warn(
                f"lease on {self.run_dir} was taken over (heartbeat stalled > {self.ttl} s?)",
                RuntimeWarning,
                stacklevel=2,
            )

    def release(self) -> None:
        """Delete the lease once the run has a summary; otherwise expire it in place
        (mtime 0) so that its generation stays the newest and a successor creates the next."""
        if self.released:
            return
        self.released = True
        if (self.run_dir / SUMMARY).exists():
            self.path.unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path, (0, 0))


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def try_acquire(run_dir: Path, ttl: float = DEFAULT_TTL) -> Lease | None:
    """Take the lease of ``run_dir`` if nobody live holds it; None if someone does."""
    if ttl <= 0:
        raise ValueError(f"lease ttl must be > 0 seconds, got {ttl}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    current = current_lease(run_dir)
    if current is not None and current.live():
        return None
    generation = current.generation + 1 if current is not None else 0
    owner = new_owner()
    body = {
        "owner": owner,
        "host": host_id(),
        "pid": os.getpid(),
        "ttl": ttl,
        "acquired": time.time(),
    }
    target = run_dir / f"{LEASE_PREFIX}{generation}"
    if not create_exclusive(target, json.dumps(body).encode()):
        return None
    for older, path in _leases(run_dir):  # expired predecessors: tidy up
        if older < generation:
            path.unlink(missing_ok=True)
    _remove_stale_temporaries(run_dir)
    return Lease(target, generation, owner, ttl)


def _remove_stale_temporaries(run_dir: Path, age: float = 60.0) -> None:
    """Temporary lease files of contenders killed mid-create (in-flight ones are young)."""
    for path in run_dir.glob(f"{LEASE_PREFIX}*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - path.stat().st_mtime > age:
                path.unlink()


def create_exclusive(target: Path, data: bytes) -> bool:
    """Create ``target`` with ``data`` atomically; False if it already exists. Readers
    never see a partial file: the data is written and fsynced under a temporary name
    first, then hard-linked to ``target`` (which fails if the name is taken)."""
    tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, target)
        return True
    except (FileExistsError, FileNotFoundError):  # taken, or our temporary was tidied away
        return False
    except OSError as e:
        if e.errno not in NO_LINKS:
            raise
        try:  # a filesystem without hard links: O_EXCL (readers tolerate a torn read)
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True
    finally:
        tmp.unlink(missing_ok=True)


class LeaseKeeper:
    """One daemon thread that heartbeats every lease this process holds."""

    def __init__(self) -> None:
        self._leases: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, lease: Lease) -> Lease:
        with self._lock:
            self._leases[id(lease)] = lease
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="fmlab-leases", daemon=True)
                self._thread.start()
        return lease

    def get(self, run_dir: Path) -> Lease | None:
        """The lease this keeper holds on ``run_dir``, if any."""
        with self._lock:
            return next((le for le in self._leases.values() if le.run_dir == Path(run_dir)), None)

    def release(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(id(lease), None)
            lease.release()

    def release_all(self) -> None:
        with self._lock:
            leases, self._leases = list(self._leases.values()), {}
            for lease in leases:
                lease.release()

    def close(self) -> None:
        self.release_all()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _interval(self) -> float:
        with self._lock:
            ttls = [lease.ttl for lease in self._leases.values()]
        return max(0.05, min(ttls, default=DEFAULT_TTL) / 4)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval()):
            with self._lock:
                for lease in list(self._leases.values()):
                    lease.heartbeat()

    def __enter__(self) -> LeaseKeeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
