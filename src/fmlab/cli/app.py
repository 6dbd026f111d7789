"""The Typer application and the helpers every command shares."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fmlab.errors import FmlabWarning, UserInputError
from fmlab.registry import UnknownNameError

app = typer.Typer(
    name="fmlab",
    help="fmlab: studies of foundation models that run on a laptop and scale out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Text from users and from run directories is printed as given: no markup, no emoji codes
# (a run named "[red]x" or ":fire:" must show as typed), so it goes through plain()/escape().


class _Console(Console):
    """Tables are printed whole where there is no terminal (a log, a pipe), at the width
    they need: rich would assume 80 columns there and cut cells short (claim names
    ending in "…"). In a terminal its width holds and long cells wrap."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self.is_terminal or not any(isinstance(o, Table) for o in objects):
            return super().print(*objects, **kwargs)
        wide = self.options.update_width(100_000)
        need = max(self.measure(o, options=wide).maximum for o in objects)
        previous = self.width
        self.width = max(previous, need)
        try:
            super().print(*objects, **kwargs)
        finally:
            self.width = previous


out = _Console(highlight=False, emoji=False)
err = _Console(stderr=True, highlight=False, emoji=False)


# Options that say how a run executes (none is part of its id), shared by the commands.
DEVICE = typer.Option(
    "auto", "--device", help="auto | cpu | cuda | cuda:N | mps (auto: a GPU if there is one)"
)
CHECKPOINT_EVERY = typer.Option(
    600.0,
    "--checkpoint-every",
    min=0,
    help="seconds between checkpoints of a training loop (0: at every evaluation)",
)
NO_CHECKPOINT = typer.Option(False, "--no-checkpoint", help="save no checkpoints (tiny runs)")
# Every command that looks a study (or mixer, instrument, executor) up takes the same
# --import; fmlab.plugins.import_modules imports them (only those named on this line).
IMPORTS = typer.Option(
    [],
    "--import",
    help="module or .py file registering your studies etc. (importing runs its code)",
)


def execution_options(device: str, checkpoint_every: float, no_checkpoint: bool) -> dict:
    """``execute``'s device and checkpoint policy from the shared options (the device is
    checked here, so a missing GPU is one line before anything starts)."""
    from fmlab.checkpoint import Policy
    from fmlab.device import resolve

    resolve(device)
    return {"device": device, "checkpoints": Policy(not no_checkpoint, checkpoint_every)}


def plain(value: Any) -> Text:
    """``value`` as literal text for a rich table cell or print (never markup)."""
    return Text(str(value))


def say(console: Console, label: str, style: str, message: Any) -> None:
    """``label`` in ``style``, then ``message`` as literal text: one line."""
    console.print(Text.assemble((label, style), " ", str(message)), soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    say(err, "error:", "bold red", message)
    return typer.Exit(code)


def report_failure(summary: dict[str, Any], path: Any) -> typer.Exit:
    """A failed run in one line — the exception's last line — and where its traceback is."""
    lines = (summary.get("error") or "").strip().splitlines()
    say(err, "failed:", "bold red", lines[-1] if lines else "(no error recorded)")
    err.print(plain(f'  the full traceback is in {path}/summary.json ("error")'))
    return typer.Exit(1)


def warn(message: Any) -> None:
    say(err, "warning:", "yellow", message)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors users and their files cause (typos, bad values, missing paths, a
    read-only or full disk) into one clear message and exit status 2, not a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _plain_warnings():
            try:
                return fn(*args, **kwargs)
            except (UnknownNameError, UserInputError) as e:
                raise fail(str(e)) from None
            except OSError as e:  # a path that is not there, a file, read-only, a full disk
                raise fail(describe_os_error(e)) from None

    return wrapper


def describe_os_error(e: OSError) -> str:
    """``[Errno 30] Read-only file system: 'runs/x'`` → ``runs/x: read-only file system``."""
    if e.errno is None and not e.filename:
        return str(e)
    what = (e.strerror or str(e)).rstrip(".")
    what = what[:1].lower() + what[1:]
    where = e.filename if e.filename is not None else ""
    if e.filename2 is not None:
        where = f"{where} → {e.filename2}"
    return f"{where}: {what}" if where else what


@contextmanager
def _plain_warnings() -> Iterator[None]:
    """fmlab's warnings (a skipped corrupt run, a fit diagnostic) as one line each."""

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        warn(message)

    with warnings.catch_warnings():
        warnings.simplefilter("always", FmlabWarning)
        previous, warnings.showwarning = warnings.showwarning, show
        try:
            yield
        finally:
            warnings.showwarning = previous


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def show_progress(as_json: bool) -> bool:
    return not as_json and err.is_terminal
