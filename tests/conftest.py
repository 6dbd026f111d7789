"""Shared fixtures. Tests never touch the network and never write outside tmp dirs."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

PLUGINS = Path(__file__).parent / "plugins"  # the toy study (a plugin, as a user's would be)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# A shell started in the background (`make test &`) hands its children SIGINT ignored, and
# Python then never raises KeyboardInterrupt: the Ctrl-C tests would see nothing. Restore
# the default here; the subprocesses these tests start inherit the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def smoke_reproduce(tmp_path_factory):
    """One ``fmlab reproduce --suite smoke -j 2`` for the whole session (every study's smoke
    run, its report and the index); tests that read it must not change it. Returns the
    output folder, the command's JSON (None if it printed none) and its exit code."""
    out = tmp_path_factory.mktemp("smoke-reproduce") / "runs"
    cmd = [sys.executable, "-m", "fmlab.cli", "reproduce", "--suite", "smoke", "-j", "2",
           "--out", str(out), "--json", "--device", "cpu", "--no-checkpoint"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        data = None
    return out, data, proc.returncode, proc.stderr


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (small tensors: no threading overhead), then
    restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
