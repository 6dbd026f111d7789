"""``wandb``: Weights & Biases in offline mode — files on disk, no account, no network;
``wandb sync <target>/wandb/offline-run-*`` uploads them later if you want.

One W&B run per fmlab run (project: the study; name: the run id; tags ``study:…``,
``run_id:…`` and the preset); the config is the run's config. Curves are logged against
their own x-axis ``step`` (fmlab logs several loops, each from step 0, which W&B's
monotonic ``_step`` would drop), tagged ones as ``name/seed:0``. At the end the summary
metrics go into the run's summary (W&B's own place for final numbers), with each claim
as ``claims/<id>`` (its verdict, value, threshold and source) and the status.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from fmlab.trackers.base import Row, RunInfo, claim_line, register_tracker, summary_scalars

STEP = "step"


class WandbSink:
    def __init__(self, run: RunInfo, target: str):
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        directory = Path(target).expanduser().resolve()
        directory.mkdir(parents=True, exist_ok=True)
        tags = [f"study:{run.study}", f"run_id:{run.run_id}"] + ([run.preset] if run.preset else [])
        settings = wandb.Settings(
            mode="offline", silent=True, console="off", disable_git=True, x_disable_stats=True
        )
        self.run = wandb.init(
            dir=str(directory),
            project=run.study,
            name=run.run_id,
            config=dict(run.config),
            tags=tags,
            settings=settings,
            reinit="create_new",  # runs of a batch (an ensemble, a suite) are open together
        )
        self.run.define_metric(STEP)
        self.run.define_metric("*", step_metric=STEP)

    def log(self, rows: Sequence[Row]) -> None:
        for step, same in groupby(rows, key=lambda r: r.step):
            self.run.log({STEP: step, **{r.key: r.value for r in same}})

    def finish(self, summary: Mapping[str, Any]) -> None:
        final: dict[str, Any] = dict(summary_scalars(summary))
        for c in summary.get("claims") or []:
            final[f"claims/{c['id']}"] = claim_line(c)
        final["status"] = summary.get("status")
        self.run.summary.update(final)
        self.run.finish(exit_code=1 if summary.get("status") == "failed" else 0)

    def close(self) -> None:
        self.run.finish(exit_code=1)


@register_tracker(
    "wandb",
    module="wandb",
    extra="wandb",
    default_target=lambda root: str(root),
    help="Weights & Biases, offline (RUNS/wandb/offline-run-*; wandb sync to upload)",
)
def open_run(run: RunInfo, target: str) -> WandbSink:
    return WandbSink(run, target)
