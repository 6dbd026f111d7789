"""``--log-to`` (on ``run``, ``sweep``, ``reproduce``) and ``fmlab export RUNS --to``:
the experiment trackers of :mod:`fmlab.trackers`, from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

LOG_TO = typer.Option(
    [],
    "--log-to",
    help="stream the runs to a tracker: tensorboard | mlflow | wandb, optionally =DIR or "
    "=URI (default: under the runs directory); repeatable. Not part of the run id",
)


def log_to(values: list[str], root: Path) -> tuple[Any, ...]:
    """The trackers named, with their default places under ``root`` made absolute (so
    that workers anywhere write where the user looks). Empty: no tracker is imported."""
    if not values:
        return ()
    from fmlab.trackers import parse_specs

    return tuple(s.resolved(root) for s in parse_specs(values))


def reused_hint(path: Path, specs: tuple[Any, ...]) -> str:
    names = " ".join(f"--to {s}" for s in specs)
    return f"it was not sent to the trackers again: fmlab export {path} {names}"
