"""The tracker contract: a run's curves, config and summary, in a tracker's own files.

A tracker is one file in :mod:`fmlab.trackers` that registers an ``open`` function::

    @register_tracker("neptune", module="neptune", extra="neptune",
                      default_target=lambda root: str(root / "neptune"),
                      help="Neptune, offline mode")
    def open_run(run: RunInfo, target: str) -> Sink:
        return NeptuneSink(...)

``open(run, target)`` starts the tracker's record of one fmlab run (its config logged);
the :class:`Sink` it returns is handed the run's rows as they are logged
(``log(rows)``, batched every few seconds) and the summary at the end
(``finish(summary)``: summary metrics and claims), or ``close()``\\ d unfinished. The
same sink serves ``--log-to`` (streaming while a run trains) and ``fmlab export --to``
(a finished run replayed from its directory). ``target`` is the tracker's place for the
run (a directory, or a URI); ``default_target(root)`` says where it goes under a runs
directory when the user names none.

A tracker never fails a run: an error while streaming is one warning, and the rest of
the run goes on without that tracker (:class:`Trackers`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from fmlab.errors import FmlabWarning, UserInputError
from fmlab.registry import Registry

FLUSH_EVERY_S = float(os.environ.get("FMLAB_LIVE_EVERY_S", "5"))  # as the live files


@dataclass(frozen=True)
class RunInfo:
    """What a tracker is told about the run it records."""

    study: str
    run_id: str
    config: Mapping[str, Any]
    preset: str | None = None
    path: Path | None = None  # the run directory


@dataclass(frozen=True)
class Row:
    """One logged value of metric ``name`` with its ``tags`` (seed, variant …);
    ``key`` is how most trackers name it (:func:`metric_key`)."""

    step: int
    name: str
    value: float
    tags: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        return metric_key(self.name, dict(self.tags))


class Sink(Protocol):
    """One open tracker run."""

    def log(self, rows: Sequence[Row]) -> None: ...

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Record the summary (metrics, claims, status) and close."""
        ...

    def close(self) -> None:
        """Close without a summary (the run was stopped); never raises."""
        ...


@dataclass(frozen=True)
class Tracker:
    name: str
    help: str
    module: str  # the library it needs (importable name)
    extra: str  # the pip extra of fmlab that installs it
    open: Callable[[RunInfo, str], Sink]
    default_target: Callable[[Path], str]

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def require(self) -> None:
        """One line saying what to install when the library is missing."""
        if not self.available():
            raise UserInputError(
                f"--log-to {self.name}: the {self.module!r} package is not installed; "
                f"pip install 'fmlab[{self.extra}]' (or 'fmlab[trackers]' for all three)"
            )


TRACKERS: Registry[Tracker] = Registry("tracker")


def register_tracker(
    name: str,
    *,
    module: str,
    extra: str,
    default_target: Callable[[Path], str],
    help: str,
) -> Callable[[Callable[[RunInfo, str], Sink]], Callable[[RunInfo, str], Sink]]:
    """Register the decorated ``open(run, target) -> Sink`` as tracker ``name``."""

    def add(fn: Callable[[RunInfo, str], Sink]) -> Callable[[RunInfo, str], Sink]:
        TRACKERS.add(name, Tracker(name, help, module, extra, fn, default_target))
        return fn

    return add


# ---- what users type: --log-to NAME[=TARGET] ----------------------------------------------


@dataclass(frozen=True)
class TrackerSpec:
    """A tracker to log to, and where (None: its default place under the runs directory).
    Plain data: it travels to sweep workers with the task."""

    name: str
    target: str | None = None

    def resolved(self, root: Path) -> TrackerSpec:
        """With the default target under ``root`` made explicit (and absolute), so that a
        worker in a scratch directory writes where the user expects."""
        if self.target is not None:
            return self
        return replace(self, target=TRACKERS.get(self.name).default_target(Path(root).resolve()))

    def __str__(self) -> str:
        return self.name if self.target is None else f"{self.name}={self.target}"


def parse_specs(values: Iterable[str], flag: str = "--log-to") -> tuple[TrackerSpec, ...]:
    """``["mlflow", "tensorboard=./tb"]`` → specs; an unknown name is one line with the
    known ones ("did you mean"), a missing library one line with the pip extra."""
    specs: dict[str, TrackerSpec] = {}
    for value in values:
        name, sep, target = value.partition("=")
        name = name.strip().lower()
        if sep and not target.strip():
            raise UserInputError(f"{flag} {value!r}: give a target after '=' or leave it out")
        tracker = TRACKERS.get(name)
        tracker.require()
        specs[name] = TrackerSpec(name, target.strip() if sep else None)
    return tuple(specs.values())


def as_specs(trackers: Iterable[TrackerSpec | str]) -> tuple[TrackerSpec, ...]:
    """``["mlflow", "tensorboard=DIR", TrackerSpec(...)]`` as specs, checked (a name that
    is not registered, or a library not installed, is one line)."""
    return parse_specs(str(t) for t in trackers)


# ---- metric names --------------------------------------------------------------------------

_TAG_VALUE = re.compile(r"[^\w.\- ]+")
_SKIP = ("step", "name", "value")


def metric_key(name: str, tags: Mapping[str, Any], sep: str = "/") -> str:
    """``test_acc`` with tags seed=0, variant=grokfast → ``test_acc/seed:0/variant:grokfast``:
    TensorBoard and W&B group the tagged curves of one metric under its name."""
    return sep.join([str(name), *(f"{k}:{v}" for k, v in tag_items(tags))])


def tag_items(tags: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Tags as text: None left out, ``0.0`` (a parquet column with gaps) shown as ``0``."""
    items = []
    for k, v in tags.items():
        if _missing(v) or k in _SKIP:
            continue
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        items.append((str(k), _TAG_VALUE.sub("_", str(v))))
    return items


def rows_of(records: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Rows from the store's long-table records (``step, name, value`` + tag columns)."""
    rows = []
    for r in records:
        tags = tuple(tag_items({k: v for k, v in r.items() if k not in _SKIP}))
        rows.append(Row(int(r["step"]), str(r["name"]), float(r["value"]), tags))
    return rows


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # NaN from parquet


def summary_scalars(summary: Mapping[str, Any]) -> dict[str, float]:
    """The summary's numeric metrics (lists, strings and None left out)."""
    out = {}
    for k, v in (summary.get("metrics") or {}).items():
        if isinstance(v, int | float):  # bools too (True → 1.0)
            out[k] = float(v)
    return out


def claim_line(claim: Mapping[str, Any]) -> str:
    """``holds: 7.4 (>= 3) · Power et al. 2022``."""
    verdict = {True: "holds", False: "fails"}.get(claim.get("passed"), "n/a")
    value = claim.get("value")
    shown = "–" if value is None else f"{value:.4g}"
    line = f"{verdict}: {shown} ({claim.get('threshold')})"
    if claim.get("reason"):
        line += f" · {claim['reason']}"
    return f"{line} · {claim.get('source')}"


# ---- the fan-out a run holds ---------------------------------------------------------------


@dataclass
class _Open:
    name: str
    sink: Sink


@dataclass
class Trackers:
    """The trackers one run logs to: rows are forwarded every ``every_s`` seconds (and at
    the end); a tracker that raises is dropped with one warning, never failing the run."""

    sinks: list[_Open]
    every_s: float = FLUSH_EVERY_S
    _sent: int = 0
    _last: float = field(default_factory=time.monotonic)

    @classmethod
    def open(cls, specs: Sequence[TrackerSpec], run: RunInfo, root: Path) -> Trackers | None:
        if not specs:
            return None
        sinks = []
        for spec in specs:
            resolved = spec.resolved(root)
            try:
                sinks.append(_Open(spec.name, TRACKERS.get(spec.name).open(run, resolved.target)))
            except Exception as e:
                _warn(spec.name, "could not start", e)
        return cls(sinks, every_s=FLUSH_EVERY_S)  # read now: tests shorten it

    def rows(self, records: list[dict[str, Any]], force: bool = False) -> None:
        """Forward the records not sent yet (at most every ``every_s`` seconds)."""
        if len(records) <= self._sent:
            return
        if not force and time.monotonic() - self._last < self.every_s:
            return
        rows = rows_of(records[self._sent :])
        self._sent, self._last = len(records), time.monotonic()
        self._each("logging", lambda s: s.log(rows))

    def finish(self, records: list[dict[str, Any]], summary: Mapping[str, Any]) -> None:
        self.rows(records, force=True)
        self._each("recording the summary", lambda s: s.finish(summary))
        self.sinks = []

    def close(self) -> None:
        for o in self.sinks:
            try:
                o.sink.close()
            except Exception as e:  # closing is best-effort
                _warn(o.name, "could not close", e)
        self.sinks = []

    def _each(self, what: str, call: Callable[[Sink], None]) -> None:
        for o in list(self.sinks):
            try:
                call(o.sink)
            except Exception as e:
                _warn(o.name, f"failed while {what}; the run goes on without it", e)
                self.sinks.remove(o)
                with contextlib.suppress(Exception):
                    o.sink.close()


def _warn(name: str, what: str, e: BaseException) -> None:
    first = (str(e).strip().splitlines() or [""])[0]
    warnings.warn(FmlabWarning(f"tracker {name} {what}: {type(e).__name__}: {first}"), stacklevel=3)
