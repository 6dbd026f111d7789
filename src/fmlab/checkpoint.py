"""Checkpoints that resume a killed run exactly where it stopped.

A run is a study's Python function: it builds models and data (deterministically, from
its seeds) and drives one or more training loops (:func:`fmlab.train.train`,
:func:`fmlab.train.ensemble.train_ensemble`), evaluating and logging in each loop's body.
A rerun of an unfinished run executes the function again from the top; every loop that
was given a checkpoint (``run.checkpoint(key)``) then picks up where it was:

* Before it yields an item ``(step, metrics)`` to the body, a loop may save (atomically,
  into ``<run>/checkpoints/``) its model and optimizer state after ``step``, its own
  running sums, the item itself, how many batches it has drawn, the rows the run logged
  since the loop started, and the body's state (``state()``, for bodies that accumulate).
  It saves when ``every_s`` seconds have passed since the last save, at the last step,
  and when a stop was requested (SIGTERM — which SLURM sends before a time limit — or
  SIGINT; a second signal stops at once).
* On the rerun the loop finds its checkpoint, restores all of that (drawing and
  discarding as many batches, so its data stream and any generator it shares continue
  exactly), and yields the saved item again: the body evaluates the restored model at
  that step and goes on. A loop that had finished is thus replayed from its last item
  without training, and a rerun ends with the same metrics, bit for bit, as a run that
  was never interrupted (same machine, same thread count).

The rule for loop bodies: keep state only in local variables set from the current item
(or hand it to ``state``/``restore``), and draw no randomness from the batches' generator.
Checkpoints are deleted once the run's summary is written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmlab.atomic import atomic_write_bytes, json_default

DIRNAME = "checkpoints"


@dataclass
class Policy:
    """When loops save: every ``every_s`` seconds (0: at every item), and always at the
    last step and on a requested stop. ``enabled=False`` (``--no-checkpoint``) saves none."""

    enabled: bool = True
    every_s: float = 600.0


# ---- stop requests (SIGTERM / SIGINT) ------------------------------------------------------

_stop = threading.Event()
_signal_seen: dict[int, int] = {}


def stop_requested() -> int | None:
    """The signal number of a pending stop request, or None."""
    return next(iter(_signal_seen), None) if _stop.is_set() else None


def raise_stop(signum: int) -> None:
    _stop.clear()
    _signal_seen.clear()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextmanager
def stop_at_checkpoints() -> Iterator[None]:
    """While a run executes: the first SIGTERM/SIGINT asks its loops to save and stop at
    their next item; a second one stops at once (as the signal would have)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if _stop.is_set():
            raise_stop(signum)
        _signal_seen[signum] = 1
        _stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
        if (pending := stop_requested()) is not None:  # no loop was there to act on it
            raise_stop(pending)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _stop.clear()
        _signal_seen.clear()


# ---- one loop's checkpoint ---------------------------------------------------------------


@dataclass
class Saved:
    """What a loop restores: its item, its tensors and scalars, the body's state and the
    rows each log received since the loop started."""

    item: tuple[int, Any]
    tensors: dict[str, Any]  # the loop's tree of tensors (model and optimizer states …)
    scalars: dict[str, Any]
    batches_drawn: int
    rows: list[list[dict[str, Any]]]  # per log
    body: Any


@dataclass
class LoopCheckpoint:
    """The checkpoint of one loop of a run (see the module docstring). ``logs`` are the
    logs the loop's body writes to (the run's, or a worker's ``CurveLog``; several for a
    batched loop over members of several runs), whose rows are saved and restored;
    ``state``/``restore`` carry the body's own state, if any."""

    directory: Path
    key: str
    logs: list[Any]
    policy: Policy = field(default_factory=Policy)
    state: Callable[[], Any] | None = None
    restore: Callable[[Any], None] | None = None
    _rows_at_start: list[int] = field(default_factory=list)
    _last_save: float = field(default_factory=time.monotonic)

    @property
    def stem(self) -> str:
        """A file name for the key (long keys keep a prefix and a hash)."""
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.key)
        if len(stem) > 80:
            stem = f"{stem[:48]}-{hashlib.sha256(self.key.encode()).hexdigest()[:16]}"
        return stem

    def begin(self) -> Saved | None:
        """Called when the loop starts: the saved state to resume from, or None."""
        self._rows_at_start = [len(log.rows_logged()) for log in self.logs]
        saved = self._load() if self.policy.enabled else None
        if saved is not None and len(saved.rows) == len(self.logs):
            for log, rows in zip(self.logs, saved.rows, strict=True):
                log.extend_rows(rows)
            if self.restore is not None:
                self.restore(saved.body)
        else:
            saved = None
        self._last_save = time.monotonic()
        return saved

    def due(self, last: bool) -> bool:
        if not self.policy.enabled:
            return False
        interval = time.monotonic() - self._last_save >= self.policy.every_s
        return last or interval or stop_requested() is not None

    def save(self, item, tensors, scalars, batches_drawn: int) -> None:
        """Save the loop before it yields ``item`` (its state after that step)."""
        rows = [
            log.rows_logged()[n:] for log, n in zip(self.logs, self._rows_at_start, strict=True)
        ]
        body = self.state() if self.state is not None else None
        names, flat = _flatten_tensors(
            {"loop": tensors, "body": body, "item": item, "scalars": scalars}
        )
        meta = {
            "key": self.key,
            "item": _encode(item, names),
            "loop": _encode(tensors, names),
            "scalars": _encode(scalars, names),
            "batches_drawn": batches_drawn,
            "rows": json.loads(json.dumps(rows, default=json_default, allow_nan=True)),
            "body": _encode(body, names),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save

        nonce = os.urandom(6).hex()
        tensor_file = self.directory / f"{self.stem}.{nonce}.safetensors"
        tensors_cpu = {k: v.detach().contiguous().cpu() for k, v in flat.items()}
        atomic_write_bytes(tensor_file, save(tensors_cpu))
        meta["tensors"] = tensor_file.name
        atomic_write_bytes(self.directory / f"{self.stem}.json", json.dumps(meta).encode())
        for old in self.directory.glob(f"{self.stem}.*.safetensors"):
            if old != tensor_file:
                old.unlink(missing_ok=True)
        self._last_save = time.monotonic()

    def _load(self) -> Saved | None:
        path = self.directory / f"{self.stem}.json"
        try:
            meta = json.loads(path.read_text())
            from safetensors.torch import load_file

            flat = load_file(self.directory / meta["tensors"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none, or unreadable: the loop starts from the beginning
        return Saved(
            item=tuple(_decode(meta["item"], flat)),
            tensors=_decode(meta["loop"], flat),
            scalars=_decode(meta["scalars"], flat),
            batches_drawn=int(meta["batches_drawn"]),
            rows=[list(r) for r in meta["rows"]],
            body=_decode(meta["body"], flat),
        )


def clear(run_dir: Path) -> None:
    """Delete a run's checkpoints (once its summary is written)."""
    directory = Path(run_dir) / DIRNAME
    if directory.is_dir():
        for file in directory.iterdir():
            file.unlink(missing_ok=True)
        directory.rmdir()


# ---- tensors inside JSON-able structures -----------------------------------------------


def _flatten_tensors(tree: Any) -> tuple[dict[int, str], dict[str, Any]]:
    """Name every tensor (and numpy array) in ``tree`` by its path."""
    import numpy as np
    import torch

    names: dict[int, str] = {}
    flat: dict[str, torch.Tensor] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, torch.Tensor | np.ndarray):
            if id(node) not in names:  # a tensor met twice is stored once
                names[id(node)] = path
                flat[path] = node if isinstance(node, torch.Tensor) else torch.from_numpy(node)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list | tuple):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    for key, value in tree.items():
        walk(value, key)
    return names, flat


def _encode(node: Any, names: dict[int, str]) -> Any:
    import numpy as np
    import torch

    if isinstance(node, torch.Tensor):
        return {"__tensor__": names[id(node)]}
    if isinstance(node, np.ndarray):
        return {"__ndarray__": names[id(node)]}
    if isinstance(node, float) and not math.isfinite(node):
        return {"__float__": repr(node)}
    if isinstance(node, dict):
        return {"__dict__": [[_encode(k, names), _encode(v, names)] for k, v in node.items()]}
    if isinstance(node, tuple):
        return {"__tuple__": [_encode(v, names) for v in node]}
    if isinstance(node, list):
        return [_encode(v, names) for v in node]
    return node


def _decode(node: Any, flat: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_decode(v, flat) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return flat[node["__tensor__"]]
    if "__ndarray__" in node:
        return flat[node["__ndarray__"]].numpy()
    if "__float__" in node:
        return float(node["__float__"])
    if "__tuple__" in node:
        return tuple(_decode(v, flat) for v in node["__tuple__"])
    return {_decode(k, flat): _decode(v, flat) for k, v in node["__dict__"]}
