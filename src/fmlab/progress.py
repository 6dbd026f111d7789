"""Progress of long work: bars on a terminal (rich), a line now and then in a log."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

from fmlab.live import duration


class Progress:
    """A live display of bars; ``task(label, total)`` yields an ``advance_to(step)``."""

    def __init__(self, console: Console | None = None):
        self._bars = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )

    def __enter__(self) -> Progress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    @contextmanager
    def task(self, label: str, total: int) -> Iterator[Callable[[int | None], None]]:
        task_id = self._bars.add_task(label, total=total)

        def advance_to(step: int | None) -> None:
            if step is None:
                self._bars.advance(task_id)
            else:
                self._bars.update(task_id, completed=step)

        try:
            yield advance_to
        finally:
            self._bars.update(task_id, completed=self._bars.tasks[task_id].total)

    def track(self, items: Iterable[Any], total: int, label: str) -> Iterator[Any]:
        """Iterate ``items``, advancing a bar to each item's step (the first element of a
        tuple item, as the training loop yields) or by one: a run's tracker."""
        with self.task(label, total) as bar:
            for item in items:
                bar(item[0] if isinstance(item, tuple) else None)
                yield item


class LineProgress:
    """Progress for a log file (output that is not a terminal): one plain line per
    ``every_s`` seconds of each loop — its label, step, share and eta — instead of bars."""

    def __init__(self, console: Console | None = None, every_s: float = 30.0):
        self.console = console or Console(stderr=True)
        self.every_s = every_s

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @contextmanager
    def task(self, label: str, total: int) -> Iterator[Callable[[int | None], None]]:
        started, last, done = time.monotonic(), time.monotonic(), 0

        def advance_to(step: int | None) -> None:
            nonlocal last, done
            done = done + 1 if step is None else step
            now = time.monotonic()
            if now - last >= self.every_s:
                last = now
                eta = (now - started) / max(done, 1) * max(total - done, 0)
                share = f" ({100 * done / total:.0f} %)" if total else ""
                line = f"{label}: {done}/{total}{share}, eta {duration(eta)}"
                self.console.print(Text(line), soft_wrap=True)

        yield advance_to

    def track(self, items: Iterable[Any], total: int, label: str) -> Iterator[Any]:
        with self.task(label, total) as bar:
            for item in items:
                bar(item[0] if isinstance(item, tuple) else None)
                yield item


def progress_for(console: Console, as_json: bool) -> Progress | LineProgress:
    """Bars on a terminal; otherwise (a log file, a pipe, ``--json``) a line now and then."""
    return Progress(console) if console.is_terminal and not as_json else LineProgress(console)
