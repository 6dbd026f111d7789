"""Studies: a config class, presets, claims, a run function and figures, registered
under a name. A study module composes library pieces; the library never imports one
(:mod:`fmlab.catalog` finds and imports them; look studies up there).

    @study("grokking", config=GrokkingConfig, presets=PRESETS, claims=CLAIMS,
           title="…", citation="…", figures=figures)
    def run(cfg: GrokkingConfig, run: Run) -> dict[str, float]:
        ...  # train, run.log(step, metrics), return summary metrics
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fmlab.claims import Claim
from fmlab.config import Config, apply_overrides, parse_overrides
from fmlab.errors import UserInputError
from fmlab.registry import Registry, UnknownNameError
from fmlab.store import Run, RunData

PRESET_NAMES = ("smoke", "quick", "paper")
RunFn = Callable[[Any, Run], Mapping[str, float]]
# Trains several configs that differ only in ``ensemble_keys`` as one batched
# computation; returns, per config, its summary metrics or the exception it ended with.
BatchFn = Callable[[Sequence[Any], Sequence[Run]], Sequence[Mapping[str, Any] | BaseException]]
FiguresFn = Callable[[RunData], Mapping[str, Any]]


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    citation: str
    config: type[Config]
    presets: Mapping[str, Config]
    claims: tuple[Claim, ...]
    run: RunFn
    figures: FiguresFn | None = None
    description: str = ""
    preset_notes: Mapping[str, str] = field(default_factory=dict)
    run_batch: BatchFn | None = None
    ensemble_keys: tuple[str, ...] = ()  # dotted config keys run_batch lets differ

    def preset(self, name: str) -> Config:
        if name not in self.presets:
            raise UnknownNameError(f"preset of {self.name}", name, list(self.presets))
        return self.presets[name]

    def resolve(self, preset: str = "quick", overrides: Sequence[str] = ()) -> Config:
        """The preset's config with ``key=value`` overrides applied and validated."""
        return apply_overrides(self.preset(preset), parse_overrides(overrides))


STUDIES: Registry[Study] = Registry("study")


def study(
    name: str,
    *,
    config: type[Config],
    presets: Mapping[str, Config],
    claims: Sequence[Claim],
    title: str,
    citation: str,
    figures: FiguresFn | None = None,
    preset_notes: Mapping[str, str] | None = None,
    run_batch: BatchFn | None = None,
    ensemble_keys: Sequence[str] = (),
) -> Callable[[RunFn], RunFn]:
    """Register the decorated run function as study ``name``."""
    missing = [p for p in PRESET_NAMES if p not in presets]
    if missing:
        raise ValueError(f"study {name!r} lacks presets {missing}; every study has {PRESET_NAMES}")
    for preset_name, cfg in presets.items():
        if not isinstance(cfg, config):
            raise TypeError(f"preset {preset_name!r} of {name!r} is not a {config.__name__}")

    def register(fn: RunFn) -> RunFn:
        doc = (fn.__module__ and __import__(fn.__module__, fromlist=["_"]).__doc__) or ""
        STUDIES.add(
            name,
            Study(
                name=name,
                title=title,
                citation=citation,
                config=config,
                presets=dict(presets),
                claims=tuple(claims),
                run=fn,
                figures=figures,
                description=doc.strip(),
                preset_notes=dict(preset_notes or {}),
                run_batch=run_batch,
                ensemble_keys=tuple(ensemble_keys),
            ),
        )
        return fn

    return register


def import_modules(modules: Iterable[str]) -> None:
    """Import the modules that register a user's studies, mixers, instruments or executors
    (``--import``). Importing a module RUNS its code, with your permissions: import only
    modules you trust. The current directory is searched too, after everything else, as
    ``python -m`` would (so a ``my_study.py`` next to you works without installing it)."""
    import importlib
    import os
    import re
    import sys

    modules = list(modules)
    for name in modules:
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", name):
            raise UserInputError(
                f"--import {name!r}: not a module name (a dotted Python name such as "
                "my_study or pkg.my_study, importable from here)"
            )
    if modules and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # last: a local file never shadows an installed package
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UserInputError(f"cannot import {name!r} (from --import): {e}") from None
        except Exception as e:  # the module's own code failed: say where, in one line
            import traceback

            frame = traceback.extract_tb(e.__traceback__)[-1]
            where = (
                f"{e.filename}:{e.lineno}"
                if isinstance(e, SyntaxError)
                else (f"{frame.filename}:{frame.lineno}")
            )
            raise UserInputError(
                f"importing {name!r} (from --import) failed at {where}: {type(e).__name__}: {e}"
            ) from None
