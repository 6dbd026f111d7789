"""The Ray executor: each task is a Ray task on a local or remote cluster.

Ray only executes. With a shared filesystem the worker writes the run into the sweep
directory under its own lease, exactly as a local worker does; without one (or with
``return_files``) it runs into a scratch directory and returns the run's files, which the
driver writes into the ledger. Ray's own retry and restore machinery is not used
(``max_retries=0``): a task whose worker died is reported ``crashed``, and rerunning the
sweep finishes it — the ledger, not the engine, knows what is done.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import Field

from fmlab.config import Config
from fmlab.errors import UserInputError
from fmlab.sweep.executors.base import ExecutorContext, register_executor
from fmlab.sweep.worker import Task, TaskOutcome, crashed, run_task


class RayOptions(Config):
    address: str | None = Field(
        None,
        description="auto | HOST:PORT | ray://… (none: a new local instance)",
        json_schema_extra={"flags": ["--ray-address", "--address"]},
    )
    return_files: bool = Field(
        False,
        description="workers return run files (no shared filesystem)",
        json_schema_extra={"flags": ["--ray-return"]},
    )


class RayExecutor:
    """Submit tasks to Ray; connect to ``address`` ("auto", "HOST:PORT", "ray://…") or use
    the Ray instance already initialised in this process, else start a local one."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        threads: int | None = None,
        return_files: bool = False,
        gpus: float = 0,
    ):
        try:
            import ray
        except ImportError:
            raise UserInputError(
                "--executor ray needs Ray: pip install 'fmlab[ray]' (ray[default])"
            ) from None
        self._ray = ray
        self.threads = threads or 1  # CPUs Ray reserves per task
        self.task_threads = threads  # None: leave the worker's torch threads as Ray set them
        self.gpus = gpus  # GPUs Ray reserves per task (1 with --device cuda)
        self.returns_files = return_files
        self._started = False
        self._refs: dict[Any, Task] = {}
        if not ray.is_initialized():
            # address None: a new local instance, even if `ray start` left a cluster behind
            local = {"address": "local", "include_dashboard": False} if address is None else {}
            try:
                ray.init(**({"address": address} | local))
            except ConnectionError as e:
                raise UserInputError(
                    f"cannot connect to the Ray cluster at {address!r}: {e}. If the cluster "
                    "uses token authentication (`ray start` enables it when ~/.ray/auth_token "
                    "exists), set RAY_AUTH_MODE=token here with the head node's token file."
                ) from None
            self._started = True

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        ray = self._ray
        remote = ray.remote(num_cpus=self.threads, num_gpus=self.gpus, max_retries=0)(run_task)
        self._refs = {remote.remote(task): task for task in tasks}
        while self._refs:
            done, _ = ray.wait(list(self._refs), num_returns=1, timeout=1.0)
            for ref in done:
                task = self._refs.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception:  # the worker died, or run_task raised outside a run
                    outcome = crashed(task, traceback.format_exc())
                yield outcome

    def close(self, interrupted: bool = False) -> None:
        """On interrupt, cancel running tasks (a KeyboardInterrupt in the worker, whose
        ``finally`` releases the leases); shut down a Ray instance this executor started."""
        ray = self._ray
        if interrupted and self._refs:
            for ref in self._refs:
                ray.cancel(ref, force=False)
            ray.wait(list(self._refs), num_returns=len(self._refs), timeout=10)
        self._refs = {}
        if self._started:
            ray.shutdown()
            self._started = False


@register_executor("ray", RayOptions, help="Ray tasks on a local or remote cluster")
def create(options: RayOptions, ctx: ExecutorContext) -> RayExecutor:
    gpus = 1 if ctx.wants_gpu else 0
    return RayExecutor(options.address, ctx.threads, options.return_files, gpus)
