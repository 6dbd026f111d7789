"""Executors on this machine: ``serial`` (in the driver) and ``local`` (spawned processes).

The pool is a small hand-rolled one rather than ``concurrent.futures``, because a sweep
needs three things that pool does not give: to know which task a dead worker was running
(it is reported as ``crashed``, the others go on, a replacement process starts), to stop
workers with SIGTERM so that they release their leases (Ctrl-C reaches only the driver:
workers ignore SIGINT), and workers that die with the driver (Linux ``PR_SET_PDEATHSIG``),
so a SIGKILLed sweep leaves no orphan behind. Workers use the ``spawn`` start method: no
forked copy of the driver's torch thread pools or locks.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from fmlab.errors import UserInputError
from fmlab.sweep.worker import Task, TaskOutcome, crashed, die_with_parent, run_task, stoppable


class SerialExecutor:
    """Runs each task in the driver process, one after another."""

    name = "serial"

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        for task in tasks:
            try:
                outcome = run_task(task)
            except Exception:
                outcome = crashed(task, traceback.format_exc())
            yield outcome

    def close(self, interrupted: bool = False) -> None:
        pass


def _worker_main(tasks: Any, results: Any, threads: int) -> None:
    """Loop of one pool process: take a task, report that it started, run it, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when to stop
    die_with_parent()
    import torch

    torch.set_num_threads(threads)
    pid = os.getpid()
    results.put(("ready", -1, None, pid))
    with stoppable():
        while (item := tasks.get()) is not None:
            index, task = item
            results.put(("start", index, None, pid))
            try:
                results.put(("done", index, run_task(task), pid))
            except Exception:
                results.put(("error", index, traceback.format_exc(), pid))


class LocalExecutor:
    """A pool of ``jobs`` spawned processes with ``threads`` torch threads each."""

    name = "local"

    def __init__(self, jobs: int, threads: int):
        self.jobs, self.threads = jobs, threads
        self._ctx = mp.get_context("spawn")
        self._procs: list[Any] = []
        self._ready: set[int] = set()

    def _spawn(self, tasks_q: Any, results_q: Any) -> None:
        env = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        with _environ(env):  # read by the child's OpenMP runtime at torch import
            proc = self._ctx.Process(
                target=_worker_main, args=(tasks_q, results_q, self.threads), daemon=True
            )
            proc.start()
        self._procs.append(proc)

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutcome]:
        if not tasks:
            return
        tasks_q, results_q = self._ctx.Queue(), self._ctx.Queue()
        n = min(self.jobs, len(tasks))
        for item in enumerate(tasks):
            tasks_q.put(item)
        for _ in range(n):
            tasks_q.put(None)
        for _ in range(n):
            self._spawn(tasks_q, results_q)
        pending, running = set(range(len(tasks))), {}
        while pending:
            try:
                kind, index, payload, pid = results_q.get(timeout=0.5)
            except queue.Empty:
                yield from self._reap(tasks, pending, running, tasks_q, results_q)
                continue
            if kind == "ready":
                self._ready.add(pid)
                continue
            if kind == "start":
                running[pid] = index
                continue
            running.pop(pid, None)
            pending.discard(index)
            yield payload if kind == "done" else crashed(tasks[index], payload)
        self._join()

    def _reap(self, tasks, pending, running, tasks_q, results_q) -> Iterator[TaskOutcome]:
        """Report the task of each worker that died mid-task; start a replacement."""
        for proc in [p for p in self._procs if not p.is_alive()]:
            self._procs.remove(proc)
            if proc.pid not in self._ready:  # e.g. the study's module cannot be imported
                self.close()
                raise UserInputError(
                    f"a local worker exited while starting (exit code {proc.exitcode}); "
                    "its error is printed above"
                )
            index = running.pop(proc.pid, None)
            if index is None:
                continue  # exited after its sentinel, or died between tasks
            pending.discard(index)
            yield crashed(tasks[index], f"worker pid {proc.pid} died (exit code {proc.exitcode})")
            self._spawn(tasks_q, results_q)  # takes over the dead worker's sentinel
        if pending and not self._procs:
            if tasks_q.empty():  # a worker died before it could report its task started
                for index in sorted(pending):
                    yield crashed(tasks[index], "worker died before reporting this task")
                pending.clear()
            else:  # all died between tasks: the queue still has work
                self._spawn(tasks_q, results_q)

    def _join(self) -> None:
        for proc in self._procs:
            proc.join(timeout=10)
        self._procs = [p for p in self._procs if p.is_alive()]

    def close(self, interrupted: bool = False) -> None:
        """Stop the workers: SIGTERM lets each release its leases; SIGKILL after 10 s."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._procs = []


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
