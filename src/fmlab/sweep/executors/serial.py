"""The ``serial`` executor: each task runs in the driver process, one after another."""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence

from fmlab.errors import UserInputError
from fmlab.parallel import plan_threads
from fmlab.sweep.executors.base import ExecutorContext, NoOptions, register_executor
from fmlab.sweep.worker import Task, TaskOutcome, crashed, run_task


class SerialExecutor:
    name = "serial"
    returns_files = False

    def __init__(self, threads: int):
        self.task_threads = threads

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        for task in tasks:
            try:
                outcome = run_task(task)
            except Exception:
                outcome = crashed(task, traceback.format_exc())
            yield outcome

    def close(self, interrupted: bool = False) -> None:
        pass


@register_executor("serial", help="in the driver process, one run after another")
def create(options: NoOptions, ctx: ExecutorContext) -> SerialExecutor:
    if ctx.jobs != 1:
        raise UserInputError(f"the serial executor runs one job at a time; got -j {ctx.jobs}")
    return SerialExecutor(plan_threads(1, ctx.threads))
