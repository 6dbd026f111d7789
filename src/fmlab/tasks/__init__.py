"""Data sources: one module per task, each generating its data from an explicit seed.

The modules are plain libraries (a config class and functions that make the data); a
study imports the one it needs. :func:`task_names` lists them for ``fmlab list``.
"""

from __future__ import annotations

import importlib
import pkgutil


def task_names() -> dict[str, str]:
    """``{module name: first line of its docstring}`` for every task module."""
    out = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        doc = importlib.import_module(f"{__name__}.{module.name}").__doc__ or ""
        out[module.name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out


__all__ = ["task_names"]
