"""Sweep specs: which configs a sweep runs, as data that can be saved, compared and resumed.

A sweep is a study's preset plus *axes*: a Cartesian ``grid``, ``zip`` (lists walked in
lock-step), seeded ``random`` draws, and ``seeds``. Each point is the preset with the
point's overrides applied through :meth:`fmlab.study.Study.resolve`, so a bad key or value
fails before anything runs, naming the field. The run id of a point is the hash of its
resolved config (as for ``fmlab run``), so the same point always lands in the same run
directory — the property resume relies on.

Random search follows Bergstra & Bengio 2012 ("Random search for hyper-parameter
optimization"): ``samples`` joint draws from independent per-key distributions, seeded by
``sample_seed`` so the same spec always draws the same points.
"""

from __future__ import annotations

import itertools
import json
import math
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from fmlab.catalog import get_study
from fmlab.config import Config, ConfigError, config_hash, parse_value
from fmlab.errors import UserInputError
from fmlab.registry import UnknownNameError
from fmlab.study import Study, import_modules

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")


class SweepSpec(Config):
    """What a sweep runs. Saved as ``sweep.json`` next to its runs; a resumed sweep
    must have the same spec (or be told ``allow_changed``)."""

    study: str
    preset: str = "quick"
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="Cartesian axes")
    zip: dict[str, list[Any]] = Field(default_factory=dict, description="lock-step axes")
    random: dict[str, str] = Field(
        default_factory=dict,
        description="key -> 'uniform:lo:hi' | 'loguniform:lo:hi' | 'int:lo:hi' | 'choice:a|b'",
    )
    samples: int = Field(0, ge=0, description="number of joint random draws")
    sample_seed: int = Field(0, description="seed of the random draws")
    seeds: int | None = Field(None, ge=1, description="run seeds 0..seeds-1 of every point")
    overrides: tuple[str, ...] = Field((), description="key=value applied to every point")
    imports: tuple[str, ...] = Field((), description="modules that register the study")

    @field_validator("grid", "zip")
    @classmethod
    def _non_empty(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in axes.items():
            if not values:
                raise ValueError(f"axis {key!r} has no values")
        return axes

    @field_validator("random")
    @classmethod
    def _distributions(cls, axes: dict[str, str]) -> dict[str, str]:
        for key, text in axes.items():
            parse_distribution(key, text)
        return axes

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        lengths = {k: len(v) for k, v in self.zip.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"zip axes must have equal lengths; got {lengths}")
        if self.random and self.samples == 0:
            raise ValueError("random axes need samples >= 1 (--samples N)")
        if self.samples and not self.random:
            raise ValueError("samples given but no random axis (--random key=uniform:lo:hi)")
        keys = [*self.grid, *self.zip, *self.random]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"key(s) {twice} appear in more than one of grid/zip/random")
        return self

    @property
    def axes(self) -> list[str]:
        """The keys this spec varies (without the seed key)."""
        return [*self.grid, *self.zip, *self.random]


def sweep_spec(
    study: str,
    preset: str = "quick",
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    zip: Mapping[str, Sequence[Any]] | None = None,
    random: Mapping[str, str] | None = None,
    samples: int = 0,
    sample_seed: int = 0,
    seeds: int | None = None,
    overrides: Sequence[str] = (),
    imports: Sequence[str] = (),
) -> SweepSpec:
    """Build a :class:`SweepSpec` from Python values — the helper a study uses to define
    its own ``sweep()``::

        def sweep() -> SweepSpec:
            return sweep_spec("grokking", "quick", grid={"train.weight_decay": [0.1, 1.0]},
                              seeds=5)

    Errors (an empty axis, unequal zip lengths, a bad distribution) raise ConfigError.
    """
    from fmlab.config import validate

    data = {
        "study": study,
        "preset": preset,
        "grid": {k: list(v) for k, v in (grid or {}).items()},
        "zip": {k: list(v) for k, v in (zip or {}).items()},
        "random": dict(random or {}),
        "samples": samples,
        "sample_seed": sample_seed,
        "seeds": seeds,
        "overrides": tuple(overrides),
        "imports": tuple(imports),
    }
    return validate(SweepSpec, data)


# ---- parsing the command line ------------------------------------------------------------


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets/quotes: ``"[1,2],[3,4]"`` → ``["[1,2]", "[3,4]"]``."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_axis(item: str, option: str) -> tuple[str, list[Any]]:
    """``"model.d_model=64,128"`` → ``("model.d_model", [64, 128])``."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise UserInputError(f"{option} {item!r} is not of the form key=v1,v2 (e.g. seed=0,1)")
    values = [parse_value(v) for v in split_top_level(raw)]
    if any(v == "" for v in values):
        raise UserInputError(f"{option} {item!r} has an empty value")
    return key.strip(), values


def parse_axes(items: Iterable[str], option: str) -> dict[str, list[Any]]:
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, values = parse_axis(item, option)
        if key in axes:
            raise UserInputError(f"{option} names {key!r} twice; give all its values at once")
        axes[key] = values
    return axes


def parse_random(items: Iterable[str]) -> dict[str, str]:
    """``["lr=loguniform:1e-4:1e-2"]`` → ``{"lr": "loguniform:1e-4:1e-2"}`` (checked)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--random {item!r} is not of the form key=uniform:lo:hi")
        parse_distribution(key.strip(), text.strip())
        out[key.strip()] = text.strip()
    return out


def parse_distribution(key: str, text: str) -> tuple[str, list[Any]]:
    """Check ``"kind:args"`` and return ``(kind, args)``; raise a clear error otherwise."""
    kind, _, rest = text.partition(":")
    usage = f"random axis {key}={text!r}: use one of uniform:lo:hi, loguniform:lo:hi, int:lo:hi, "
    usage += "choice:a|b|c"
    if kind not in DISTRIBUTIONS:
        raise UserInputError(f"{usage} (unknown distribution {kind!r})")
    if kind == "choice":
        options = [parse_value(v) for v in rest.split("|") if v != ""]
        if not options:
            raise UserInputError(f"{usage} (choice needs at least one option)")
        return kind, options
    bounds = rest.split(":")
    try:
        lo, hi = (int(b) if kind == "int" else float(b) for b in bounds)
    except ValueError:
        raise UserInputError(f"{usage} (bounds {rest!r} are not two numbers)") from None
    if (lo > hi) if kind == "int" else not lo < hi:
        raise UserInputError(f"{usage} (need lo < hi, got {lo}, {hi})")
    if kind == "loguniform" and lo <= 0:
        raise UserInputError(f"{usage} (loguniform needs lo > 0, got {lo})")
    return kind, [lo, hi]


# ---- expanding a spec into points --------------------------------------------------------


def draw(kind: str, args: list[Any], rng: np.random.Generator) -> Any:
    if kind == "uniform":
        return float(rng.uniform(args[0], args[1]))
    if kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))
    if kind == "int":
        return int(rng.integers(args[0], args[1], endpoint=True))
    return args[int(rng.integers(len(args)))]


def random_rows(spec: SweepSpec) -> list[dict[str, Any]]:
    """``samples`` joint draws; keys are drawn in a fixed (sorted) order per sample."""
    if not spec.random:
        return [{}]
    rng = np.random.default_rng(spec.sample_seed)
    parsed = {k: parse_distribution(k, spec.random[k]) for k in sorted(spec.random)}
    return [{k: draw(*parsed[k], rng) for k in parsed} for _ in range(spec.samples)]


def seed_key(config: type[Config]) -> str | None:
    """``"seed"`` for an int ``seed`` field, ``"seeds"`` for a list ``seeds`` field."""
    fields = config.model_fields
    if "seed" in fields and fields["seed"].annotation is int:
        return "seed"
    if "seeds" in fields and typing.get_origin(fields["seeds"].annotation) in (list, tuple):
        return "seeds"
    return None


def seed_values(key: str, n: int) -> list[Any]:
    return list(range(n)) if key == "seed" else [[k] for k in range(n)]


def expand(spec: SweepSpec, seed_field: str | None = None) -> list[dict[str, Any]]:
    """Every point's overrides, in a stable order: grid × zip × random × seeds."""
    grid = [dict(zip(spec.grid, combo, strict=True)) for combo in _product(spec.grid)]
    n_zip = len(next(iter(spec.zip.values()))) if spec.zip else 0
    zipped = [{k: v[i] for k, v in spec.zip.items()} for i in range(n_zip)] or [{}]
    seeds = [{seed_field: s} for s in seed_values(seed_field, spec.seeds)] if spec.seeds else [{}]
    if spec.seeds and seed_field is None:
        raise UserInputError("--seeds needs the study's seed field; pass it to expand()")
    rows = itertools.product(grid, zipped, random_rows(spec), seeds)
    return [{k: v for part in row for k, v in part.items()} for row in rows]


def _product(axes: Mapping[str, list[Any]]) -> Iterable[tuple[Any, ...]]:
    return itertools.product(*axes.values()) if axes else [()]


@dataclass(frozen=True, eq=False)
class SweepPoint:
    """One config of a sweep: the swept values, the resolved config and its run id."""

    values: dict[str, Any]
    config: Config
    run_id: str


@dataclass(frozen=True, eq=False)
class SweepPlan:
    """A validated spec: the study, its points (deduplicated by run id), the seed key."""

    spec: SweepSpec
    study: Study
    points: tuple[SweepPoint, ...]
    seed_key: str | None
    duplicates: int = 0
    imports: tuple[str, ...] = ()  # the modules imported to find the study

    @property
    def swept_keys(self) -> list[str]:
        return [*self.spec.axes, *([self.seed_key] if self.spec.seeds else [])]


def plan(spec: SweepSpec, imports: Sequence[str] | None = None) -> SweepPlan:
    """Resolve and validate every point (before anything runs). ``imports`` are the
    modules to import first (default: the spec's own — pass the modules the user named
    when the spec was read from disk, since importing runs code)."""
    imports = tuple(spec.imports if imports is None else imports)
    import_modules(imports)
    try:
        study = get_study(spec.study)
    except UnknownNameError:
        missing = [m for m in spec.imports if m not in imports]
        if not missing:
            raise
        named = " ".join(f"--import {m}" for m in missing)
        raise UserInputError(
            f"study {spec.study!r} is registered by {', '.join(map(repr, missing))} (as the "
            f"sweep's spec says); fmlab imports only the modules you name, because importing "
            f"runs their code: add {named} if you trust it"
        ) from None
    study.preset(spec.preset)  # an unknown preset fails here, with did-you-mean
    key = seed_key(study.config)
    if spec.seeds and key is None:
        raise UserInputError(
            f"--seeds: study {study.name!r} has no int field 'seed' nor list field 'seeds' "
            f"({study.config.__name__}); sweep its own seed-like key with --grid instead"
        )
    if key and key in spec.axes and spec.seeds:
        raise UserInputError(f"{key!r} is both swept and set by --seeds; use one of the two")
    points, seen, duplicates = [], set(), 0
    for i, values in enumerate(expand(spec, key)):
        assignments = [f"{k}={json.dumps(v)}" for k, v in values.items()]
        try:
            cfg = study.resolve(spec.preset, [*spec.overrides, *assignments])
        except ConfigError as e:
            shown = ", ".join(assignments) or "(no overrides)"
            raise ConfigError(f"sweep point {i} ({shown}): {e}") from None
        run_id = config_hash(study.name, cfg)
        if run_id in seen:
            duplicates += 1
            continue
        seen.add(run_id)
        points.append(SweepPoint(values, cfg, run_id))
    return SweepPlan(spec, study, tuple(points), key, duplicates, imports)
