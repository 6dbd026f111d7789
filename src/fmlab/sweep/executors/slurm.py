"""The SLURM executor, through submitit: each task is one job (of one job array).

On a SLURM cluster every task is submitted at once as a job array whose concurrency is
capped by ``jobs`` (``--array=…%jobs``); the jobs write the sweep directory, which must be
on the shared filesystem (as the home and project filesystems of clusters are). submitit's
``local`` and ``debug`` clusters run the same jobs on this machine (subprocesses, or the
driver itself) — how fmlab tests this path without SLURM — at most ``jobs`` at a time.
A job's ``timeout_min`` ends in SIGTERM/SIGUSR2; either way its leases are released or
expire, and rerunning the sweep reruns only the unfinished runs.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from fmlab.config import Config
from fmlab.errors import UserInputError
from fmlab.sweep.executors.base import ExecutorContext, register_executor
from fmlab.sweep.worker import Task, TaskOutcome, crashed, run_task_stoppable

CLUSTERS = ("slurm", "local", "debug")


class SlurmOptions(Config):
    cluster: str = Field("slurm", description="slurm | local | debug (submitit's test clusters)")
    partition: str | None = Field(None, description="SLURM partition")
    time_min: int = Field(
        60, ge=1, description="minutes per job", json_schema_extra={"flags": ["--slurm-time"]}
    )
    mem_gb: float | None = Field(
        None, gt=0, description="GB per job", json_schema_extra={"flags": ["--slurm-mem"]}
    )
    gpus: int | None = Field(None, ge=0, description="GPUs per job (default: 1 with --device cuda)")
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="extra sbatch key=value (repeatable)",
        json_schema_extra={"flags": ["--slurm-opt"]},
    )
    poll_s: float = Field(1.0, gt=0, description="seconds between job-state polls")

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, value: str) -> str:
        if value not in CLUSTERS:
            raise ValueError(f"choose one of {', '.join(CLUSTERS)}")
        return value

    @field_validator("extra")
    @classmethod
    def _sbatch_options(cls, extra: dict[str, str]) -> dict[str, str]:
        """Refuse an sbatch option submitit does not know (before anything is submitted)."""
        try:
            from submitit.slurm.slurm import SlurmExecutor as _Submitit
        except ImportError:  # checked when the executor starts (and says how to install)
            return extra
        known = _Submitit._valid_parameters()
        unknown = sorted(k for k in extra if k not in known)
        if unknown:
            raise ValueError(
                f"unknown sbatch option(s) {unknown}; known: {', '.join(sorted(known))}"
            )
        return extra


class SlurmExecutor:
    name = "slurm"
    returns_files = False  # jobs write the sweep directory on the shared filesystem

    def __init__(
        self,
        *,
        folder: Path,
        jobs: int = 1,
        threads: int = 1,
        cluster: str = "slurm",
        partition: str | None = None,
        time_min: int = 60,
        mem_gb: float | None = None,
        gpus: int = 0,
        extra: dict[str, Any] | None = None,
        poll_s: float = 1.0,
    ):
        try:
            import submitit
        except ImportError:
            raise UserInputError(
                "--executor slurm needs submitit: pip install 'fmlab[ray]'"
            ) from None
        self.jobs, self.cluster, self.poll_s = jobs, cluster, poll_s
        self.task_threads = threads
        try:
            self._ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        except RuntimeError as e:  # e.g. no srun: not on a SLURM cluster
            raise UserInputError(
                f"--executor slurm: {e} (--slurm-cluster local runs the jobs here as subprocesses)"
            ) from None
        params: dict[str, Any] = {
            "name": "fmlab-sweep",
            "timeout_min": int(time_min),
            "cpus_per_task": int(threads),
            "gpus_per_node": int(gpus),
            "slurm_array_parallelism": int(jobs),
        }
        if mem_gb is not None:
            params["mem_gb"] = float(mem_gb)
        if partition:
            params["slurm_partition"] = partition
        params.update({f"slurm_{k}": v for k, v in (extra or {}).items()})
        try:
            self._ex.update_parameters(**params)
        except (NameError, AssertionError, ValueError) as e:
            raise UserInputError(f"invalid SLURM/submitit parameter: {e}") from None
        self._active: list[tuple[Any, Task]] = []

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        queued = list(tasks)
        if self.cluster == "slurm":  # one array; SLURM itself caps the concurrency
            with self._ex.batch():
                jobs = [self._ex.submit(run_task_stoppable, t) for t in queued]
            self._active, queued = list(zip(jobs, queued, strict=True)), []
        while self._active or queued:
            while queued and len(self._active) < self.jobs:  # local/debug: a moving window
                task = queued.pop(0)
                self._active.append((self._ex.submit(run_task_stoppable, task), task))
            finished = [(job, task) for job, task in self._active if job.done()]
            if not finished:
                time.sleep(self.poll_s)
                continue
            for job, task in finished:
                self._active.remove((job, task))
                yield self._result(job, task)

    @staticmethod
    def _result(job: Any, task: Task) -> TaskOutcome:
        try:
            return job.result()
        except Exception:  # the job failed, was cancelled or timed out
            return crashed(task, traceback.format_exc())

    def close(self, interrupted: bool = False) -> None:
        if interrupted:
            for job, _ in self._active:
                job.cancel(check=False)  # scancel: SIGTERM, and run_task releases its leases
        self._active = []


@register_executor("slurm", SlurmOptions, help="SLURM job arrays through submitit")
def create(options: SlurmOptions, ctx: ExecutorContext) -> SlurmExecutor:
    return SlurmExecutor(
        folder=ctx.directory / ".submitit",
        jobs=ctx.jobs,
        threads=ctx.threads or 1,
        cluster=options.cluster,
        partition=options.partition,
        time_min=options.time_min,
        mem_gb=options.mem_gb,
        gpus=options.gpus if options.gpus is not None else int(ctx.wants_gpu),
        extra=options.extra,
        poll_s=options.poll_s,
    )
