"""The instrument registry, filled by ``@INSTRUMENTS.register(name)`` in each module.

It lives in its own module so the instrument modules can import it without importing
the package ``__init__`` (which imports them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fmlab.registry import Registry

INSTRUMENTS: Registry[Callable[..., Any]] = Registry("instrument")
