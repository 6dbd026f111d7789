"""Where studies are found: the one module that imports them.

The bundled studies are the packages of :mod:`fmlab.studies`, discovered with
``pkgutil`` (a new study is a new package, no edit here); a user's studies are registered
by importing their module (``--import``, :func:`fmlab.study.import_modules`). Looking up
one name imports only its package (``induction-heads`` → ``fmlab.studies.induction_heads``)
when that exists, so ``fmlab report`` of one run does not import every study.
"""

from __future__ import annotations

import importlib
import pkgutil

from fmlab.study import STUDIES, Study

_discovered = False


def bundled_names() -> list[str]:
    """Module names of the bundled study packages (``induction_heads`` …)."""
    import fmlab.studies

    return sorted(m.name for m in pkgutil.iter_modules(fmlab.studies.__path__) if m.ispkg)


def discover() -> None:
    """Import every bundled study package (each registers itself), once."""
    global _discovered
    if not _discovered:
        for name in bundled_names():
            importlib.import_module(f"fmlab.studies.{name}")
        _discovered = True


def get_study(name: str) -> Study:
    """The study registered as ``name``; an unknown name lists every study (did you mean)."""
    if name not in STUDIES:
        package = name.replace("-", "_")
        if package in bundled_names():
            importlib.import_module(f"fmlab.studies.{package}")
    if name not in STUDIES:
        discover()
    return STUDIES.get(name)


def all_studies() -> list[Study]:
    """Every registered study (bundled and imported), sorted by name."""
    discover()
    return [s for _, s in STUDIES.items()]
