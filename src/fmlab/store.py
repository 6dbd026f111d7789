"""The run directory: the one contract between running, reporting and resuming.

    runs/<study>/<run_id>/
        config.json       the resolved config, enough to rerun it exactly
        metrics.parquet   long table: step, name, value (+ tag columns such as seed)
        summary.json      written last and atomically; its presence means "finished"
        artifacts/        weights (safetensors), figures, anything else

Every file is written to a temporary name in the same directory, fsynced and renamed
over the target, so a killed process never leaves a half-written file behind under a
real name. A run without ``summary.json`` did not finish and is simply run again.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from fmlab.atomic import atomic_write_bytes, atomic_write_json
from fmlab.checkpoint import LoopCheckpoint, Policy
from fmlab.config import flatten
from fmlab.contracts import STATUSES, ConfigFile, CorruptFileError, SummaryFile, read_json
from fmlab.errors import FmlabWarning
from fmlab.live import LiveLog

SUMMARY, CONFIG, METRICS, ARTIFACTS = "summary.json", "config.json", "metrics.parquet", "artifacts"
LEASE_PREFIX = ".lease-"  # .lease-<generation>: who runs this directory now (fmlab.lease)
QUARANTINE = ".quarantine"  # .quarantine-<time>/: a corrupt attempt's files, kept aside
CHECKPOINTS = "checkpoints"  # an unfinished run's loop checkpoints (fmlab.checkpoint)


def json_safe(value: Any) -> Any:
    """NaN/inf become None (JSON has no NaN); containers are converted recursively."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):
        return json_safe(value.item())
    return value


Tracker = Callable[[Iterable[Any], int, str], Iterator[Any]]


class RunLog(Protocol):
    """Where a study records its curves: a :class:`Run`, or a
    :class:`~fmlab.train.pool.CurveLog` standing in for one inside a worker process."""

    def log(self, step: int, metrics: Mapping[str, float], **tags: Any) -> None: ...

    def track(self, items: Iterable[Any], total: int, label: str = "") -> Iterator[Any]: ...


class Run:
    """A run directory being written. Create it with :meth:`Run.start`."""

    def __init__(self, path: Path, study: str, run_id: str, config: Mapping[str, Any]):
        self.path, self.study, self.run_id = Path(path), study, run_id
        self.config = dict(config)
        self._rows: list[dict[str, Any]] = []
        self.tracker: Tracker | None = None  # shows progress (fmlab.progress), if attached
        self.checkpoints = Policy(enabled=False)  # the runner sets the run's policy
        self.live = LiveLog(self.path)  # curves and progress, readable while it runs
        self.trackers: Any = None  # fmlab.trackers.Trackers streaming it (--log-to), if any

    @classmethod
    def start(cls, root: Path, study: str, run_id: str, config: Mapping[str, Any]) -> Run:
        """Create (or reset an unfinished) ``root/study/run_id`` and write config.json.

        A finished run (with ``summary.json``) is never reset: that is the caller's
        decision (``--force``), made by deleting the summary first.
        """
        path = Path(root) / study / run_id
        if (path / SUMMARY).exists():
            raise FileExistsError(f"{path} has finished; remove {SUMMARY} to rerun it")
        if path.exists():  # leftovers of a killed attempt: start clean, but for its
            for child in path.iterdir():  # leases, quarantined files and checkpoints
                if child.name.startswith((LEASE_PREFIX, QUARANTINE)) or child.name == CHECKPOINTS:
                    continue
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        (path / ARTIFACTS).mkdir(parents=True, exist_ok=True)
        atomic_write_json(path / CONFIG, {"study": study, "run_id": run_id, "config": config})
        return cls(path, study, run_id, config)

    @property
    def artifacts(self) -> Path:
        return self.path / ARTIFACTS

    def log(self, step: int, metrics: Mapping[str, float], **tags: Any) -> None:
        """Append ``metrics`` at ``step``; ``tags`` (seed=0, variant="grokfast") become
        columns of the long table."""
        for name, value in metrics.items():
            self._rows.append({"step": int(step), "name": name, "value": float(value), **tags})
        self.live.rows(self._rows)
        if self.trackers is not None:
            self.trackers.rows(self._rows)

    def track(self, items: Iterable[Any], total: int, label: str = "") -> Iterator[Any]:
        """Iterate ``items`` (e.g. the training generator) through the attached tracker,
        which shows progress by each item's step; a plain pass-through without one."""
        watched = self.live.track(items, total, label or self.study)
        if self.tracker is None:
            return watched
        return self.tracker(watched, total, label or self.study)

    def checkpoint(
        self,
        key: str,
        state: Callable[[], Any] | None = None,
        restore: Callable[[Any], None] | None = None,
        also: Iterable[Any] = (),
    ) -> LoopCheckpoint:
        """The checkpoint of one training loop of this run, for ``train(...,
        checkpoint=run.checkpoint("pretrain s0"))``: ``key`` must be unique in the run and
        the same on a rerun; ``state``/``restore`` carry a loop body's own state, if it
        keeps any; ``also`` are other runs the body logs to (a batched loop over members
        of several runs). :mod:`fmlab.checkpoint` states the rules."""
        logs = [self, *(r for r in dict.fromkeys(also) if r is not self)]
        return LoopCheckpoint(self.path / CHECKPOINTS, key, logs, self.checkpoints, state, restore)

    def checkpoint_spec(self) -> tuple[str, Policy] | None:
        """Where and when this run's loops save, for worker processes (None: they don't)."""
        return (
            (str(self.path / CHECKPOINTS), self.checkpoints) if self.checkpoints.enabled else None
        )

    def rows_logged(self) -> list[dict[str, Any]]:
        return self._rows

    def extend_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add rows logged before (restored from a checkpoint)."""
        self._rows.extend(dict(r) for r in rows)
        self.live.rows(self._rows, force=True)
        if self.trackers is not None:
            self.trackers.rows(self._rows)

    def metrics_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self._rows)
        if frame.empty:
            frame = pd.DataFrame({"step": [], "name": [], "value": []})
        return frame

    def flush(self) -> None:
        """Write everything logged so far to metrics.parquet (atomically)."""
        data = self.metrics_frame().to_parquet(index=False)
        atomic_write_bytes(self.path / METRICS, data)

    def save_weights(self, name: str, module_or_state: Any) -> Path:
        """Save weights as ``artifacts/<name>.safetensors`` (never pickle)."""
        from safetensors.torch import save

        state = getattr(module_or_state, "state_dict", lambda: module_or_state)()
        tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
        target = self.artifacts / f"{name}.safetensors"
        atomic_write_bytes(target, save(tensors))
        return target

    def save_json(self, name: str, obj: Any) -> Path:
        target = self.artifacts / f"{name}.json"
        atomic_write_json(target, json_safe(obj))
        return target

    def finish(self, summary: Mapping[str, Any]) -> Path:
        """Flush metrics, then write summary.json — last, atomically."""
        if summary.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {summary.get('status')!r}")
        self.flush()
        return self.finish_without_metrics(summary)

    def finish_without_metrics(self, summary: Mapping[str, Any]) -> Path:
        """Write summary.json alone (atomically): how a failure is recorded when the
        metrics could not be written (a full disk)."""
        atomic_write_json(self.path / SUMMARY, json_safe(dict(summary)))
        self.live.close()
        if self.trackers is not None:  # the summary and claims, then the trackers close
            self.trackers.finish(self._rows, json_safe(dict(summary)))
            self.trackers = None
        return self.path / SUMMARY

    def close_trackers(self) -> None:
        """Close the trackers of a run that stops unfinished (they record it as such)."""
        if self.trackers is not None:
            self.trackers.close()
            self.trackers = None


# ---- reading ---------------------------------------------------------------------------
# Every read is validated (fmlab.contracts): a corrupt file is a CorruptFileError naming
# it, which callers turn into "rerun it" (the runner, the ledger) or "skip it with a
# warning" (listings, reports, tables) — never a traceback.


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's summary, or None when it has not finished (CorruptFileError if it is
    not a valid summary)."""
    return read_json(Path(run_dir) / SUMMARY, SummaryFile)


def read_config(run_dir: Path) -> dict[str, Any]:
    data = read_json(Path(run_dir) / CONFIG, ConfigFile)
    if data is None:
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {CONFIG})")
    return data


def read_metrics(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return pd.DataFrame({"step": [], "name": [], "value": []})
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many types for a damaged file
        raise CorruptFileError(
            path, f"is not a readable parquet table ({type(e).__name__})"
        ) from None
    missing = sorted({"step", "name", "value"} - set(frame.columns))
    if missing:
        raise CorruptFileError(path, f"lacks the columns {missing}")
    return frame


def skip(error: CorruptFileError, what: str = "skipping it") -> None:
    """One-line warning about a corrupt file that a command goes on without."""
    warnings.warn(FmlabWarning(f"{error}; {what}"), stacklevel=2)


def quarantine(run_dir: Path, reason: str) -> Path:
    """Move a run directory's files (leases excepted) into ``.quarantine-<time>/`` inside
    it, with a note of why, so that the run can start again without losing them."""
    run_dir = Path(run_dir)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = run_dir / f"{QUARANTINE}-{stamp}"
    target.mkdir()
    for child in run_dir.iterdir():
        if child != target and not child.name.startswith((LEASE_PREFIX, QUARANTINE)):
            os.replace(child, target / child.name)
    (target / "REASON.txt").write_text(reason + "\n")
    return target


def is_run_dir(path: Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def find_runs(path: Path) -> list[Path]:
    """Run directories at or below ``path`` (finished or not), sorted; hidden directories
    (quarantined attempts) are not runs."""
    path = Path(path)
    if is_run_dir(path):
        return [path]
    found = []
    for config in path.rglob(CONFIG):
        parts = config.relative_to(path).parts[:-1]
        if parts and parts[-1] != ARTIFACTS and not any(p.startswith(".") for p in parts):
            found.append(config.parent)
    return sorted(found)


def load_runs(path: Path, *, finished_only: bool = True) -> pd.DataFrame:
    """One row per run below ``path``: study, run_id, status, wall_s, path, the
    flattened config (``config.<key>``), summary metrics (``metrics.<name>``) and the
    number of claims passed/total. Unfinished runs appear only if asked for; a corrupt
    run is skipped with a warning."""
    rows = []
    for run_dir in find_runs(path):
        try:
            summary = read_summary(run_dir)
            if summary is None:
                if finished_only:
                    continue
                summary = {**read_config(run_dir), "status": "unfinished"}
        except CorruptFileError as e:
            skip(e)
            continue
        claims = summary.get("claims") or []
        row = {
            "study": summary.get("study"),
            "run_id": summary.get("run_id"),
            "status": summary.get("status"),
            "wall_s": summary.get("wall_s"),
            "path": str(run_dir),
            "claims_passed": sum(bool(c.get("passed")) for c in claims),
            "claims_total": len(claims),
        }
        row.update({f"config.{k}": v for k, v in flatten(summary.get("config") or {}).items()})
        row.update({f"metrics.{k}": v for k, v in (summary.get("metrics") or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


class RunData:
    """A finished (or unfinished) run read back from disk, for reports and fits. A corrupt
    ``config.json`` or ``summary.json`` raises CorruptFileError; a corrupt
    ``metrics.parquet`` reads as empty, with a warning."""

    def __init__(self, path: Path):
        self.path = Path(path)
        head = read_config(self.path)
        self.study: str = head["study"]
        self.run_id: str = head["run_id"]
        self.config: dict[str, Any] = head["config"]
        self.summary: dict[str, Any] | None = read_summary(self.path)
        self._metrics: pd.DataFrame | None = None

    @property
    def metrics(self) -> pd.DataFrame:
        if self._metrics is None:
            try:
                self._metrics = read_metrics(self.path)
            except CorruptFileError as e:
                skip(e, "showing no curves")
                self._metrics = pd.DataFrame({"step": [], "name": [], "value": []})
        return self._metrics

    @property
    def artifacts(self) -> Path:
        return self.path / ARTIFACTS

    def series(self, name: str, **tags: Any) -> pd.DataFrame:
        """Rows of one metric (optionally filtered by tag values), sorted by step."""
        frame = self.metrics[self.metrics["name"] == name]
        for key, value in tags.items():
            frame = frame[frame[key] == value]
        return frame.sort_values("step")
