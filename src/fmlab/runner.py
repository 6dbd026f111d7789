"""Run one study config into its run directory and record the outcome.

``execute`` is what ``fmlab run``, sweeps and every executor call: it resolves the run
id, skips a run that already finished, calls the study, turns a NaN/inf loss into a
``diverged`` result and an exception into a ``failed`` one (with its traceback), checks
the claims, and writes ``summary.json`` last.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fmlab.claims import evaluate_claims
from fmlab.config import Config, config_hash
from fmlab.env import env_info
from fmlab.store import SUMMARY, Run, read_summary
from fmlab.study import Study
from fmlab.train.loop import Diverged

DONE = ("completed", "diverged")  # a failed run is rerun; a diverged one is a result


@dataclass(frozen=True)
class RunResult:
    path: Path
    summary: dict[str, Any]
    reused: bool = False

    @property
    def status(self) -> str:
        return self.summary["status"]


@contextmanager
def numerics() -> Iterator[None]:
    """Flush subnormal floats to zero while training: once a loss reaches ~1e-7 (a
    memorised grokking train set), subnormal gradients made CPU steps ~10× slower."""
    previous = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if previous:  # set_flush_denormal returns whether the CPU supports it
            torch.set_flush_denormal(False)


def run_dir(study: Study, cfg: Config, out: Path) -> Path:
    return Path(out) / study.name / config_hash(study.name, cfg)


def execute(
    study: Study,
    cfg: Config,
    out: Path,
    *,
    force: bool = False,
    progress: Any = None,
    reraise: bool = False,
    preset: str | None = None,
) -> RunResult:
    """Run ``cfg`` of ``study`` under ``out`` unless it already finished.

    ``force`` reruns a finished run; ``reraise`` re-raises a study's exception after
    recording the failure (for interactive use); ``progress`` shows progress bars;
    ``preset`` is recorded in the summary for reports (it is not part of the run id).
    """
    path = run_dir(study, cfg, out)
    existing = read_summary(path)
    if existing is not None and existing.get("status") in DONE and not force:
        return RunResult(path, existing, reused=True)
    if existing is not None:
        (path / SUMMARY).unlink()
    run_id = path.name
    config = cfg.model_dump(mode="json")
    run = Run.start(Path(out), study.name, run_id, config)
    run.progress = progress
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        with numerics():
            metrics: Mapping[str, Any] = dict(study.run(cfg, run))
        status = "completed"
    except Diverged as d:
        status, metrics = "diverged", {"diverged_at_step": d.step}
    except Exception as e:  # recorded, not raised: a sweep goes on past a failed run
        status, metrics, error = "failed", {}, e
    summary = {
        "study": study.name,
        "run_id": run_id,
        "status": status,
        "preset": preset,
        "config": config,
        "metrics": dict(metrics),
        "claims": evaluate_claims(study.claims, metrics),
        "env": env_info(),
        "wall_s": round(time.perf_counter() - started, 3),
    }
    if error is not None:
        summary["error"] = "".join(traceback.format_exception(error))
    run.finish(summary)
    if error is not None and reraise:
        raise error
    return RunResult(path, read_summary(path) or summary)
