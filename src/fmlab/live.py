"""Watching a run while it trains: its curves and progress, in its run directory.

While a run executes it appends its logged rows to ``metrics.live.jsonl`` (one JSON row
per line, flushed every few seconds) and keeps ``progress.json`` up to date (the loop
being trained, its step and total, when it started). ``fmlab show RUN`` reads them — with
the run's lease, which says whether the process is alive and where — and
``fmlab show RUN --follow`` tails them until the run finishes. Both files are removed
once ``summary.json`` and ``metrics.parquet`` are written.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmlab.atomic import atomic_write_bytes, json_default

LIVE_METRICS, PROGRESS = "metrics.live.jsonl", "progress.json"
FLUSH_EVERY_S = float(os.environ.get("FMLAB_LIVE_EVERY_S", "5"))  # tests shorten it


class LiveLog:
    """The writing side, owned by a :class:`~fmlab.store.Run`."""

    def __init__(self, run_dir: Path, every_s: float = FLUSH_EVERY_S):
        self.dir, self.every_s = Path(run_dir), every_s
        self._written = 0  # rows already appended
        self._last = 0.0
        self._progress: dict[str, Any] = {}

    def rows(self, rows: list[dict[str, Any]], force: bool = False) -> None:
        """Append the rows not written yet, at most every ``every_s`` seconds."""
        now = time.monotonic()
        if len(rows) <= self._written or (not force and now - self._last < self.every_s):
            return
        lines = "".join(
            json.dumps(r, default=json_default, allow_nan=True) + "\n"
            for r in rows[self._written :]
        )
        try:
            with open(self.dir / LIVE_METRICS, "a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()
        except OSError:  # watching is best-effort: never fail a run for it
            return
        self._written, self._last = len(rows), now
        if self._progress:
            self._write_progress()

    def track(self, items: Iterable[Any], total: int, label: str) -> Iterator[Any]:
        """Record the progress of ``items`` (a training loop's ``(step, …)`` items)."""
        self._progress = {"label": label, "total": total, "step": 0, "started": time.time()}
        for item in items:
            self._progress["step"] = item[0] if isinstance(item, tuple) else None
            self._progress["updated"] = time.time()
            yield item

    def _write_progress(self) -> None:
        with contextlib.suppress(OSError):
            atomic_write_bytes(self.dir / PROGRESS, json.dumps(self._progress).encode())

    def close(self) -> None:
        for name in (LIVE_METRICS, PROGRESS):
            (self.dir / name).unlink(missing_ok=True)


# ---- the reading side ----------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What an unfinished run's directory says about it right now."""

    label: str | None
    step: int | None
    total: int | None
    eta_s: float | None
    latest: dict[str, float]  # the newest value of each metric
    rows: int


def read_progress(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(run_dir) / PROGRESS).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def tail_rows(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Rows appended since byte ``offset`` (complete lines only) and the new offset."""
    path = Path(run_dir) / LIVE_METRICS
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a line being written is read next time
    rows = []
    for line in data[:end].splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, offset + end


def snapshot(run_dir: Path) -> Snapshot:
    progress = read_progress(run_dir)
    rows, _ = tail_rows(run_dir)
    latest: dict[str, float] = {}
    for row in rows:
        if isinstance(row.get("name"), str) and isinstance(row.get("value"), int | float):
            latest[row["name"]] = row["value"]
    step, total = progress.get("step"), progress.get("total")
    eta = None
    started, updated = progress.get("started"), progress.get("updated")
    if all(isinstance(v, int | float) for v in (step, total, started, updated)) and step > 0:
        eta = max(0.0, (updated - started) / step * (total - step))
    return Snapshot(progress.get("label"), step, total, eta, latest, len(rows))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def describe(snap: Snapshot, keys: tuple[str, ...] = ("loss", "test_acc", "eval_loss")) -> str:
    """One line: ``pretrain s0: step 400/1000 (40 %), eta 2m10s · loss 1.23 · …``."""
    where = snap.label or "?"
    if snap.step is not None and snap.total:
        where += f": step {snap.step}/{snap.total} ({100 * snap.step / snap.total:.0f} %)"
        where += f", eta {duration(snap.eta_s)}"
    shown = [f"{k} {snap.latest[k]:.4g}" for k in keys if k in snap.latest]
    return " · ".join([where, *shown])
