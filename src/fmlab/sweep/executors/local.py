"""The ``local`` executor: a pool of spawned processes on this machine
(:class:`fmlab.parallel.ProcessPool`). A worker that dies mid-task is reported as
``crashed`` and replaced; Ctrl-C reaches only the driver, which stops the workers with
SIGTERM so that they release their leases; workers die with a SIGKILLed driver."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fmlab.errors import UserInputError
from fmlab.parallel import Crashed, Done, ProcessPool, WorkerStartError, plan_threads
from fmlab.sweep.executors.base import ExecutorContext, NoOptions, register_executor
from fmlab.sweep.worker import Task, TaskOutcome, crashed, run_task


class LocalExecutor:
    """``jobs`` spawned processes with ``threads`` torch threads each."""

    name = "local"
    returns_files = False

    def __init__(self, jobs: int, threads: int):
        self.jobs, self.task_threads = jobs, threads
        self._pool = ProcessPool(jobs, threads)

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        try:
            for outcome in self._pool.run(run_task, [(task,) for task in tasks]):
                task = tasks[outcome.index]
                if isinstance(outcome, Done):
                    yield outcome.value
                elif isinstance(outcome, Crashed):
                    yield crashed(task, outcome.message)
                else:
                    yield crashed(task, outcome.traceback)
        except WorkerStartError as e:
            raise UserInputError(f"a local {e}") from None

    def close(self, interrupted: bool = False) -> None:
        self._pool.close()


@register_executor("local", help="spawned processes on this machine (-j of them)")
def create(options: NoOptions, ctx: ExecutorContext) -> LocalExecutor:
    return LocalExecutor(ctx.jobs, plan_threads(ctx.jobs, ctx.threads))
