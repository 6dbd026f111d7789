"""Driving the real command line in subprocesses, as users (and SLURM) do."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PLUGINS = Path(__file__).parents[1] / "plugins"
TOY = ["--import", "fmlab_sweep_toy", "-p", "smoke", "--threads", "1"]


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "fmlab.cli", *[str(a) for a in args]]


def toy_env_for(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Environment of a subprocess that can --import the toy study and logs its runs."""
    marks = tmp_path / "marks"
    marks.mkdir()
    path = os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "FMLAB_TOY_MARKS": str(marks),
           "OMP_NUM_THREADS": "1", "COLUMNS": "200"}  # fmt: skip
    return env, marks


def starts(marks: Path) -> list[str]:
    """Run ids of every execution the toy study began."""
    log = marks / "marks.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split()[1] for line in lines if line.startswith("start ")]
