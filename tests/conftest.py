"""Shared fixtures. Tests never touch the network and never write outside tmp dirs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"
