"""``mlflow``: one MLflow run per fmlab run, through ``mlflow.tracking.MlflowClient``.

The target is a tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``) or a local
directory, used as a file store (default ``<runs>/mlruns``: ``mlflow ui
--backend-store-uri runs/mlruns``). MLflow keeps its file store in maintenance mode and
asks for ``MLFLOW_ALLOW_FILE_STORE=true`` to use it; fmlab sets that in its own process
(unless you set it) only when the target is a local directory. The experiment is the study; the
run is named by the run id and tagged ``fmlab.study``, ``fmlab.run_id``, ``fmlab.preset``,
``fmlab.status``. The config is logged as params (dotted keys), curves as metrics with
their steps (tagged ones as ``test_acc.seed:0``), summary metrics as ``summary/…``, each
claim as a metric ``claims/<id>`` (1 holds, 0 fails) and a tag ``claim.<id>``, and
``summary.json`` as an artifact. A rerun
or a re-export soft-deletes the earlier MLflow runs of the same fmlab run
(``mlflow runs restore`` brings one back).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fmlab.config import flatten
from fmlab.trackers.base import (
    Row,
    RunInfo,
    claim_line,
    metric_key,
    register_tracker,
    summary_scalars,
)

_BAD = re.compile(r"[^/\w.\- :]+")
MAX_PARAMS, MAX_METRICS, MAX_VALUE = 100, 1000, 6000  # MLflow's limits per log_batch call


def tracking_uri(target: str) -> str:
    """A URI as given; anything without a scheme is a local directory (a file store)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", target) and not re.match(r"^[A-Za-z]:\\", target):
        return target
    return Path(target).expanduser().resolve().as_uri()


def key(name: str) -> str:
    return _BAD.sub("_", name)[:250]


def curve_key(row: Row) -> str:
    """``test_acc.seed:0``: a file store keeps ``loss`` as a file, so a tagged ``loss/…``
    (a directory beside it) cannot be; curve names use dots, never slashes."""
    return key(metric_key(row.name.replace("/", "."), dict(row.tags), sep="."))


class MLflowSink:
    def __init__(self, run: RunInfo, target: str):
        uri = tracking_uri(target)
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # yours, if you set it
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(run.study)
        exp_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(run.study)
        )
        earlier = self.client.search_runs(
            [exp_id], filter_string=f"tags.`fmlab.run_id` = '{run.run_id}'"
        )
        for r in earlier:  # one MLflow run per fmlab run: a rerun replaces the record
            self.client.delete_run(r.info.run_id)
        tags = {"fmlab.study": run.study, "fmlab.run_id": run.run_id}
        if run.preset:
            tags["fmlab.preset"] = run.preset
        if run.path is not None:
            tags["fmlab.path"] = str(run.path)
        self.id = self.client.create_run(exp_id, run_name=run.run_id, tags=tags).info.run_id
        params = [Param(key(k), _text(v)[:MAX_VALUE]) for k, v in flatten(dict(run.config)).items()]
        for i in range(0, len(params), MAX_PARAMS):
            self.client.log_batch(self.id, params=params[i : i + MAX_PARAMS])
        self.last_step = 0

    def log(self, rows: Sequence[Row]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(curve_key(r), r.value, now, r.step) for r in rows]
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(self.id, metrics=metrics[i : i + MAX_METRICS])
        self.last_step = max([self.last_step, *(r.step for r in rows)])

    def finish(self, summary: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        now, step = int(time.time() * 1000), self.last_step
        metrics = [
            Metric(key(f"summary/{k}"), v, now, step) for k, v in summary_scalars(summary).items()
        ]
        tags = [RunTag("fmlab.status", str(summary.get("status")))]
        for c in summary.get("claims") or []:
            tags.append(RunTag(key(f"claim.{c['id']}"), claim_line(c)[:MAX_VALUE]))
            if c.get("passed") is not None:
                passed = float(bool(c["passed"]))
                metrics.append(Metric(key(f"claims/{c['id']}"), passed, now, step))
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(self.id, metrics=metrics[i : i + MAX_METRICS])
        self.client.log_batch(self.id, tags=tags)
        self.client.log_dict(self.id, dict(summary), "summary.json")
        status = "FAILED" if summary.get("status") == "failed" else "FINISHED"
        self.client.set_terminated(self.id, status)

    def close(self) -> None:
        self.client.set_terminated(self.id, "KILLED")


def _text(value: Any) -> str:
    return "None" if value is None else str(value)


@register_tracker(
    "mlflow",
    module="mlflow",
    extra="mlflow",
    default_target=lambda root: str(root / "mlruns"),
    help="MLflow: a local file store (RUNS/mlruns) or a tracking URI",
)
def open_run(run: RunInfo, target: str) -> MLflowSink:
    return MLflowSink(run, target)
