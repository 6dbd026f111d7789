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

from fmlab.errors import UserInputError

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base class of every fmlab config: frozen, typed, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

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
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r} conflicts with another override of {part!r}")
    node[leaf] = value


def _merge(base: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in updates.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
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
        else:
            given = e.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"  {field}: {e['msg']}{shown}")
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


def _execution_only(cfg: BaseModel) -> dict[str, Any]:
    """The ``exclude`` tree of ``cfg``'s execution fields, nested configs included."""
    tree: dict[str, Any] = {}
    for name, field in type(cfg).model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("run_id") is False:
            tree[name] = True
        elif isinstance(value := getattr(cfg, name), BaseModel) and (sub := _execution_only(value)):
            tree[name] = sub
    return tree


def config_hash(study: str, cfg: BaseModel, length: int = 10) -> str:
    """Stable short hash of a study name and its resolved config: the run id. Fields made
    with :func:`execution_field` are left out."""
    config = cfg.model_dump(mode="json", exclude=_execution_only(cfg) or None)
    payload = canonical_json({"study": study, "config": config})
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def save_config(cfg: BaseModel, path: Path) -> None:
    Path(path).write_text(json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True))


def load_config(cls: type[C], path: Path) -> C:
    return validate(cls, json.loads(Path(path).read_text()))
