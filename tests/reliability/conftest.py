"""Fixtures of the reliability tests (helpers in :mod:`helpers`)."""

from __future__ import annotations

import pytest
from tests.reliability.helpers import toy_env_for


@pytest.fixture
def toy_env(tmp_path):
    return toy_env_for(tmp_path)
