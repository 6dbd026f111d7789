"""Configs: frozen pydantic models, ``a.b=value`` overrides, a stable hash, load/save.

Every study, task, model and training setup is described by a frozen :class:`Config`.
Unknown fields are refused (``extra="forbid"``) so a misspelt key never silently does
nothing. Errors are re-raised as :class:`ConfigError`, which names the dotted field,
what was given, and what is allowed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python

from fmlab.errors import UserInputError

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base class of every fmlab config: frozen, typed, no unknown fields."""

    # allow_inf_nan: a config is hashed as strict JSON, and no field means "infinity"
    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False
    )

    def override(self: C, *assignments: str, **values: Any) -> C:
        """A copy with dotted overrides applied: ``cfg.override("train.lr=1e-3")``."""
        updates = parse_overrides(assignments)
        for key, value in values.items():
            _set_dotted(updates, key, value)
        return apply_overrides(self, updates)


class ConfigError(UserInputError):
    """An invalid config; the message names each bad field and what it allows."""


def parse_value(text: str) -> Any:
    """Read a command-line value: JSON where it parses (numbers, lists, true), else a string."""
    if text.strip().lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_overrides(assignments: Iterable[str]) -> dict[str, Any]:
    """``["model.d_model=64", "seed=1"]`` → ``{"model": {"d_model": 64}, "seed": 1}``."""
    nested: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"override {item!r} is not of the form key=value (e.g. train.lr=1e-3)"
            )
        _set_dotted(nested, key.strip(), parse_value(raw.strip()))
    return nested


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    if any(not part.strip() for part in dotted.split(".")):
        raise ConfigError(f"override key {dotted!r} has an empty part (e.g. train.lr=1e-3)")
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r} conflicts with another override of {part!r}")
    node[leaf] = value


def _merge(base: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """``updates`` merged into ``base``. A sub-config whose ``kind`` changes (a mixer) is
    replaced, not merged: the old kind's options mean nothing to the new one."""
    out = dict(base)
    for key, value in updates.items():
        old = out.get(key)
        if isinstance(value, Mapping) and isinstance(old, dict):
            changed = "kind" in value and "kind" in old and value["kind"] != old["kind"]
            out[key] = dict(value) if changed else _merge(old, value)
        else:
            out[key] = value
    return out


def apply_overrides(cfg: C, updates: Mapping[str, Any]) -> C:
    """Validate ``cfg`` with nested ``updates`` merged in; a bad value raises ConfigError."""
    merged = _merge(cfg.model_dump(), updates)
    return validate(type(cfg), merged)


def validate(cls: type[C], data: Mapping[str, Any]) -> C:
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_errors(cls, err)) from None


def describe_errors(cls: type[BaseModel], err: ValidationError) -> str:
    lines = [f"invalid {cls.__name__}:"]
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if isinstance(p, str))
        field = ".".join(loc) or "(config)"
        if e["type"] == "extra_forbidden":
            allowed = fields_at(cls, loc[:-1])
            close = difflib.get_close_matches(loc[-1], allowed, n=2, cutoff=0.5)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            lines.append(
                f"  {field}: unknown field.{hint} Allowed here: {', '.join(allowed) or '(none)'}"
            )
        elif isinstance(inner := (e.get("ctx") or {}).get("error"), ConfigError):
            # a nested config validated by a validator (a mixer's): its lines, re-rooted
            for line in str(inner).splitlines()[1:]:
                lines.append(f"  {field}.{line.strip()}")
        else:
            given = e.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  {field}: {msg}{shown}")
    return "\n".join(lines)


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic model classes inside an annotation such as ``Foo | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) or origin is typing.Annotated:
        return [m for arg in typing.get_args(annotation) for m in _model_types(arg)]
    return []


def fields_at(cls: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """Field names of the (sub)config at dotted location ``loc``."""
    models = [cls]
    for part in loc:
        nxt = []
        for m in models:
            if part in m.model_fields:
                nxt += _model_types(m.model_fields[part].annotation)
        models = nxt
    return sorted({name for m in models for name in m.model_fields})


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists are kept as values)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def execution_field(default: Any, description: str, **kwargs: Any) -> Any:
    """A config field that says how a run is executed (e.g. worker processes), not what it
    computes: results must not depend on it, so it is left out of the run id and a finished
    run is reused whatever its value."""
    return Field(default, description=description, json_schema_extra={"run_id": False}, **kwargs)


def added_field(default: Any, description: str, **kwargs: Any) -> Any:
    """A field added after run ids were published: left out of the run id while it holds
    its default, so every run made before it existed keeps its id (and is reused); a
    non-default value enters the id as any field does."""
    extra = {"run_id": "unless_default"}
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


def _run_id_rule(field: Any) -> Any:
    extra = field.json_schema_extra
    return extra.get("run_id", True) if isinstance(extra, dict) else True


def identity(cfg: BaseModel) -> dict[str, Any]:
    """What the run id hashes: the JSON form of ``cfg`` without its execution fields and
    without added fields at their defaults. A config class may define
    ``run_id_view(data) -> data`` to keep the ids of an older layout (GPTConfig does)."""
    data: dict[str, Any] = {}
    for name, field in type(cfg).model_fields.items():
        rule, value = _run_id_rule(field), getattr(cfg, name)
        if rule is False:
            continue
        if rule == "unless_default" and value == field.get_default(call_default_factory=True):
            continue
        data[name] = _identity_of(value)
    view = getattr(cfg, "run_id_view", None)
    return view(data) if view is not None else data


def _identity_of(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return identity(value)
    if isinstance(value, list | tuple):
        return [_identity_of(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _identity_of(v) for k, v in value.items()}
    return to_jsonable_python(value)


def config_hash(study: str, cfg: BaseModel, length: int = 10) -> str:
    """Stable short hash of a study name and its resolved config: the run id (see
    :func:`identity` for what it covers)."""
    payload = canonical_json({"study": study, "config": identity(cfg)})
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def save_config(cfg: BaseModel, path: Path) -> None:
    Path(path).write_text(json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True))


def load_config(cls: type[C], path: Path) -> C:
    return validate(cls, json.loads(Path(path).read_text()))
