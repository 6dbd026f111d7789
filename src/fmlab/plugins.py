"""``--import``: the user's own modules that register studies, mixers, instruments or
executors, named on the command line as a module (``my_study``, ``pkg.my_study``) or as a
Python file (``./memorise.py``).

Importing a module RUNS its code, with your permissions: fmlab imports only what you name
on this command line (a resumed sweep never imports what its saved spec lists; issue 14).
A module name is looked up on ``sys.path`` and then in the current directory, last, as
``python -m`` would (so a ``my_study.py`` next to you works without installing it, and
never shadows an installed package). A file is imported under its stem as module name.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from fmlab.errors import UserInputError

__all__ = ["absolute", "import_modules", "is_file_path"]

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def is_file_path(name: str) -> bool:
    """``--import`` names a file (``x.py``, ``./x``, ``dir/x.py``) rather than a module."""
    return name.endswith(".py") or "/" in name or os.sep in name


def absolute(modules: Iterable[str]) -> tuple[str, ...]:
    """The ``--import`` names with file paths made absolute: what a worker in another
    directory (a sweep's process pool, a Ray or SLURM node) must import."""
    return tuple(str(Path(n).expanduser().resolve()) if is_file_path(n) else n for n in modules)


def import_modules(modules: Iterable[str]) -> None:
    """Import each module or ``.py`` file (``--import``); a bad one is a
    :class:`UserInputError` in one line saying where fmlab looked."""
    modules = list(modules)
    for name in modules:
        if not is_file_path(name) and not _DOTTED.fullmatch(name):
            raise UserInputError(
                f"--import {name!r}: not a module name or a .py file (a dotted Python name "
                "such as my_study or pkg.my_study, or a path such as ./my_study.py)"
            )
    if any(not is_file_path(n) for n in modules) and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # last: a local file never shadows an installed package
    for name in modules:
        try:
            if is_file_path(name):
                _import_file(name)
            else:
                importlib.import_module(name)
        except UserInputError:
            raise
        except ImportError as e:
            raise UserInputError(_not_found(name, e)) from None
        except Exception as e:  # the module's own code failed: say where, in one line
            raise UserInputError(_failed(name, e)) from None


def _import_file(name: str) -> None:
    path = Path(name).expanduser()
    if not path.is_file():
        where = path.resolve()
        raise UserInputError(
            f"--import {name!r}: no such file (looked for {where}; the current directory is "
            f"{os.getcwd()})"
        )
    path = path.resolve()
    if path.suffix != ".py":
        raise UserInputError(f"--import {name!r}: a file to import must end in .py")
    module_name = path.stem
    if not module_name.isidentifier():
        raise UserInputError(
            f"--import {name!r}: {path.name} is not importable as a module (rename it to a "
            "Python identifier, e.g. my_study.py)"
        )
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        if getattr(loaded, "__file__", None) and Path(loaded.__file__).resolve() == path:
            return  # already imported (e.g. by name and by path): run its code once
        raise UserInputError(
            f"--import {name!r}: a module named {module_name!r} is already imported from "
            f"{getattr(loaded, '__file__', None) or 'a built-in'}; rename {path.name}"
        )
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserInputError(f"--import {name!r}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before exec: dataclasses and pickling look it up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise


def _not_found(name: str, e: ImportError) -> str:
    missing = getattr(e, "name", None)
    if missing not in (None, name) and not name.startswith(f"{missing}."):
        # the module exists but imports something that does not
        return f"importing {name!r} (from --import) failed: {e}"
    looked = [p or os.getcwd() for p in sys.path]
    return (
        f"cannot import {name!r} (from --import): {e}; looked in the current directory "
        f"({os.getcwd()}) and sys.path ({os.pathsep.join(dict.fromkeys(looked))}); "
        "give a file as --import ./path/to/module.py"
    )


def _failed(name: str, e: BaseException) -> str:
    import traceback

    if isinstance(e, SyntaxError):
        where = f"{e.filename}:{e.lineno}"
    else:
        frame = traceback.extract_tb(e.__traceback__)[-1]
        where = f"{frame.filename}:{frame.lineno}"
    return f"importing {name!r} (from --import) failed at {where}: {type(e).__name__}: {e}"
