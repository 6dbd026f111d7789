"""``tensorboard``: event files written with TensorBoard's own writer (no TensorFlow, no
torch needed), one directory per run: ``<target>/<study>/<run_id>/``.

Curves are scalars under their names (tagged ones as ``name/seed:0``); the config is a
text summary (``config``, JSON) and an HParams session (the HParams dashboard compares
the runs of a sweep by their configs and summary scalars). At the end the summary
metrics are scalars under ``summary/…``, each claim a scalar ``claims/<id>`` (1 holds,
0 fails) and the claims with their sources a text table (``claims``). A rerun or a
re-export replaces the run's event files. ``tensorboard --logdir runs/tensorboard``
shows them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fmlab.config import flatten
from fmlab.trackers.base import Row, RunInfo, claim_line, register_tracker, summary_scalars

EVENTS_PREFIX = "events.out.tfevents."


class TensorBoardSink:
    def __init__(self, run: RunInfo, target: str):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.dir = Path(target) / run.study / run.run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob(EVENTS_PREFIX + "*"):  # a rerun replaces the record
            old.unlink()
        self.writer = EventFileWriter(str(self.dir))
        self.last_step = 0
        self._text("config", _code(json.dumps(dict(run.config), indent=2, default=str)), 0)
        meta = {"study": run.study, "run_id": run.run_id, "preset": run.preset}
        self._text("fmlab", _code(json.dumps(meta, indent=2)), 0)
        self._hparams(run)

    def log(self, rows: Sequence[Row]) -> None:
        for row in rows:
            self._scalar(row.key, row.value, row.step)
            self.last_step = max(self.last_step, row.step)
        self.writer.flush()

    def finish(self, summary: Mapping[str, Any]) -> None:
        step = self.last_step
        for name, value in summary_scalars(summary).items():
            self._scalar(f"summary/{name}", value, step)
        claims = summary.get("claims") or []
        for c in claims:
            if c.get("passed") is not None:
                self._scalar(f"claims/{c['id']}", float(bool(c["passed"])), step)
        table = ["| claim | verdict | source |", "| --- | --- | --- |"]
        table += [f"| {c['id']} | {claim_line(c)} | {c.get('source')} |" for c in claims]
        self._text("claims", "\n".join(table), step)
        self._text("status", str(summary.get("status")), step)
        self.close()

    def close(self) -> None:
        self.writer.close()

    def _scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        value_pb = Summary.Value(tag=tag, simple_value=float(value))
        self._event(Summary(value=[value_pb]), step)

    def _text(self, tag: str, text: str, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboard.plugins.text.metadata import create_summary_metadata

        tensor = TensorProto(
            dtype="DT_STRING", string_val=[text.encode()], tensor_shape=TensorShapeProto()
        )
        value_pb = Summary.Value(tag=tag, metadata=create_summary_metadata(tag, ""), tensor=tensor)
        self._event(Summary(value=[value_pb]), step)

    def _hparams(self, run: RunInfo) -> None:
        """The config as the HParams dashboard's session: runs of a sweep side by side,
        with their summary scalars as its metrics."""
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb

        values = {
            k: v if isinstance(v, bool | int | float | str) else json.dumps(v)
            for k, v in flatten(dict(run.config)).items()
        }
        self._event(hparams_pb(values, trial_id=f"{run.study}/{run.run_id}"), 0)

    def _event(self, summary: Any, step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self.writer.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))


def _code(text: str) -> str:
    """Markdown code block (TensorBoard renders text summaries as Markdown)."""
    return "\n".join("    " + line for line in text.splitlines())


@register_tracker(
    "tensorboard",
    module="tensorboard",
    extra="tensorboard",
    default_target=lambda root: str(root / "tensorboard"),
    help="TensorBoard event files (tensorboard --logdir RUNS/tensorboard)",
)
def open_run(run: RunInfo, target: str) -> TensorBoardSink:
    return TensorBoardSink(run, target)
