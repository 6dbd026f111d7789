"""Progress bars for long work (rich), attached to runs only when a console shows them."""

from __future__ import annotations

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
