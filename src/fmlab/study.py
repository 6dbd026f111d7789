"""Studies: a config class, presets, claims, a run function and figures, registered
under a name. A study module composes library pieces; the library never imports one
(:mod:`fmlab.catalog` finds and imports them; look studies up there).

    @study("grokking", config=GrokkingConfig, presets=PRESETS, claims=CLAIMS,
           title="…", citation="…", figures=figures)
    def run(cfg: GrokkingConfig, run: Run) -> dict[str, float]:
        ...  # train, run.log(step, metrics), return summary metrics
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fmlab.claims import Claim
from fmlab.config import Config, apply_overrides, parse_overrides
from fmlab.plugins import import_modules  # noqa: F401  (the --import of every command)
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
