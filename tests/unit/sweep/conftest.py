"""The toy plugin study for sweep tests, registered for one test and removed after."""

from __future__ import annotations

import importlib
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"


class Toy:
    """Handle on the toy plugin: its execution log and helpers to read it."""

    def __init__(self, marks: Path):
        self.marks = marks

    def lines(self) -> list[list[str]]:
        log = self.marks / "marks.log"
        return [line.split() for line in log.read_text().splitlines()] if log.exists() else []

    def count(self, kind: str) -> Counter:
        """Executions per run id (``start``, ``end`` or ``batch`` lines)."""
        return Counter(parts[1] for parts in self.lines() if parts[0] == kind)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    path = os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("FMLAB_TOY_MARKS", str(marks))
    module = importlib.import_module("fmlab_sweep_toy")
    module.register()
    yield Toy(marks)
    module.unregister()
    sys.modules.pop("fmlab_sweep_toy", None)
