"""The one process pool behind everything fmlab runs side by side on this machine: a
sweep's ``local`` executor, ``fmlab reproduce -j``, and a study's own models
(:func:`fmlab.train.pool.pool_map`).

It is a small hand-rolled pool rather than ``concurrent.futures``, because fmlab needs
what that pool does not give:

* which job a dead worker was running — it is reported as :class:`Crashed`, the other
  jobs go on and a replacement process starts;
* workers that stop cleanly: they ignore SIGINT (Ctrl-C reaches the parent, which
  decides), and SIGTERM raises ``SystemExit`` in them so ``finally`` blocks run (a sweep
  worker releases its leases);
* workers that die with their parent, even a SIGKILLed one (Linux ``PR_SET_PDEATHSIG``).
  The signal is armed first thing in the worker, and a worker whose parent is already gone
  by then (killed while the worker was still importing) exits at once instead of taking
  jobs from the queue.

Workers use the ``spawn`` start method (no forked copy of the parent's torch thread pools
or locks) and ``threads`` torch threads each.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Done:
    index: int
    value: Any


@dataclass(frozen=True)
class Failed:
    """The job raised: ``error`` is the exception (None if it could not be pickled back),
    ``traceback`` its text as formatted in the worker."""

    index: int
    error: BaseException | None
    traceback: str


@dataclass(frozen=True)
class Crashed:
    """The worker process died while running the job."""

    index: int
    message: str


Outcome = Done | Failed | Crashed


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def busy_cores() -> int:
    """Cores other processes keep busy now: the larger of the 1-minute load average and
    the processes runnable this instant (less this one), from ``/proc/loadavg``."""
    try:
        fields = Path("/proc/loadavg").read_text().split()
        load, runnable = float(fields[0]), int(fields[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):
        try:
            load, runnable = os.getloadavg()[0], 0
        except (OSError, AttributeError):
            return 0
    return max(round(load), runnable, 0)


def default_threads(processes: int = 1, cores: int | None = None, busy: int | None = None) -> int:
    """Torch threads per process when the user gives none: the cores no other process is
    using, shared among ``processes``, at least one. OpenMP threads that find their core
    taken spin: measured here, a small study (induction-heads smoke, 400 steps) took 7.6 s
    with 1 thread and 53.8 s with 2 while another process kept one of the 2 cores busy
    (7.3 s and 7.2 s on the idle machine)."""
    cores = cores or available_cores()
    busy = busy_cores() if busy is None else busy
    free = max(1, cores - busy)
    return max(1, min(cores, free) // max(processes, 1))


def plan_threads(jobs: int, threads: int | None, cores: int | None = None) -> int:
    """Torch threads per worker so that ``jobs × threads ≤ cores`` (oversubscribed
    OpenMP threads spin and slow every process down many times); by default the free
    cores (:func:`default_threads`)."""
    from fmlab.errors import UserInputError

    cores = cores or available_cores()
    if jobs < 1:
        raise UserInputError(f"-j/--jobs must be >= 1, got {jobs}")
    if threads is None:
        return default_threads(jobs, cores)
    if threads < 1:
        raise UserInputError(f"--threads must be >= 1, got {threads}")
    if jobs * threads > cores:
        raise UserInputError(
            f"-j {jobs} × --threads {threads} = {jobs * threads} threads exceeds the {cores} "
            f"cores here; use at most --threads {max(1, cores // jobs)} or fewer jobs"
        )
    return threads


class WorkerStartError(RuntimeError):
    """A worker exited before it was ready (e.g. a module it imports is broken)."""


# ---- in the worker ------------------------------------------------------------------------


def die_with_parent(parent: int | None = None) -> bool:
    """Linux: get SIGTERM when the parent dies (even by SIGKILL). Returns False when the
    parent ``parent`` is already gone (the caller should exit); elsewhere a no-op (an
    orphan then finishes its job, whose result is still recorded)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return True
    return parent is None or os.getppid() == parent


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def stoppable() -> Iterator[None]:
    """Make SIGTERM (what a pool, ``scancel`` or a dying parent sends) raise SystemExit in
    the main thread, so that ``finally`` blocks run (leases are released) before exiting."""
    if threading.current_thread() is not threading.main_thread():  # only main may set it
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _portable(error: BaseException) -> BaseException | None:
    """The exception itself if it survives pickling (the parent re-raises it), else None."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return None
    return error


def _worker_main(jobs: Any, results: Any, threads: int, parent: int, init: Any) -> None:
    if not die_with_parent(parent):
        os._exit(0)  # the parent died while this process was starting: take no job
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    import torch

    torch.set_num_threads(threads)
    if init is not None:
        init()
    pid = os.getpid()
    results.put(("ready", -1, None, pid))
    with stoppable():
        while (item := jobs.get()) is not None:
            index, fn, args = item
            results.put(("start", index, None, pid))
            try:
                results.put(("done", index, fn(*args), pid))
            except Exception as e:
                results.put(("error", index, (_portable(e), traceback.format_exc()), pid))


# ---- in the parent ------------------------------------------------------------------------


class ProcessPool:
    """``workers`` spawned processes with ``threads`` torch threads each; ``init`` (a
    picklable function) runs once in each worker before its first job."""

    def __init__(self, workers: int, threads: int = 1, init: Callable[[], None] | None = None):
        self.workers, self.threads, self.init = workers, threads, init
        self._ctx = mp.get_context("spawn")
        self._procs: list[Any] = []
        self._ready: set[int] = set()

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, jobs_q: Any, results_q: Any) -> None:
        env = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        with _environ(env):  # read by the child's OpenMP runtime at torch import
            proc = self._ctx.Process(
                target=_worker_main,
                args=(jobs_q, results_q, self.threads, os.getpid(), self.init),
                daemon=True,
            )
            proc.start()
        self._procs.append(proc)

    def run(self, fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]) -> Iterator[Outcome]:
        """``fn(*job)`` for every job, yielding each outcome as it arrives (any order;
        ``index`` says which job). ``fn`` must be a module-level function."""
        if not jobs:
            return
        jobs_q, results_q = self._ctx.Queue(), self._ctx.Queue()
        n = min(self.workers, len(jobs))
        for index, args in enumerate(jobs):
            jobs_q.put((index, fn, tuple(args)))
        for _ in range(n):
            jobs_q.put(None)
        for _ in range(n):
            self._spawn(jobs_q, results_q)
        pending, running = set(range(len(jobs))), {}
        while pending:
            try:
                kind, index, payload, pid = results_q.get(timeout=0.5)
            except queue.Empty:
                yield from self._reap(pending, running, jobs_q, results_q)
                continue
            if kind == "ready":
                self._ready.add(pid)
            elif kind == "start":
                running[pid] = index
            else:
                running.pop(pid, None)
                pending.discard(index)
                yield Done(index, payload) if kind == "done" else Failed(index, *payload)
        self._join()

    def _reap(self, pending: set, running: dict, jobs_q: Any, results_q: Any) -> Iterator[Outcome]:
        """Report the job of each worker that died mid-job; start a replacement."""
        for proc in [p for p in self._procs if not p.is_alive()]:
            self._procs.remove(proc)
            if proc.pid not in self._ready:
                self.close()
                raise WorkerStartError(
                    f"a worker process exited while starting (exit code {proc.exitcode}); "
                    "its error is printed above"
                )
            index = running.pop(proc.pid, None)
            if index is None:
                continue  # exited after its sentinel, or died between jobs
            pending.discard(index)
            yield Crashed(index, f"worker pid {proc.pid} died (exit code {proc.exitcode})")
            self._spawn(jobs_q, results_q)  # takes over the dead worker's sentinel
        if pending and not self._procs:
            if jobs_q.empty():  # a worker died before it could report its job started
                for index in sorted(pending):
                    yield Crashed(index, "worker died before reporting this job")
                pending.clear()
            else:  # all died between jobs: the queue still has work
                self._spawn(jobs_q, results_q)

    def _join(self) -> None:
        for proc in self._procs:
            proc.join(timeout=10)
        self._procs = [p for p in self._procs if p.is_alive()]

    def close(self) -> None:
        """Stop the workers: SIGTERM lets each run its ``finally`` blocks; SIGKILL after 10 s."""
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
