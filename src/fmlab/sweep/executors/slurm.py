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

from fmlab.errors import UserInputError
from fmlab.sweep.worker import Task, TaskOutcome, crashed, run_task_stoppable

CLUSTERS = ("slurm", "local", "debug")


class SlurmExecutor:
    name = "slurm"

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
        if cluster not in CLUSTERS:
            raise UserInputError(f"--slurm-cluster {cluster!r}: choose one of {CLUSTERS}")
        self.jobs, self.cluster, self.poll_s = jobs, cluster, poll_s
        self._ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
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
