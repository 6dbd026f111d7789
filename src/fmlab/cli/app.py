"""The Typer application and the helpers every command shares."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import typer
from rich.console import Console

from fmlab.errors import UserInputError
from fmlab.registry import UnknownNameError

app = typer.Typer(
    name="fmlab",
    help="fmlab: studies of foundation models that run on a laptop and scale out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors users cause (typos, bad values, missing paths) into one clear
    message and exit status 2 instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UnknownNameError, UserInputError, FileNotFoundError) as e:
            raise fail(str(e)) from None

    return wrapper


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def show_progress(as_json: bool) -> bool:
    return not as_json and err.is_terminal
