"""Every registered executor's options as ``fmlab sweep`` flags, made from its options
model (:mod:`fmlab.sweep.executors.base`): a new executor's options appear in ``--help``
under its own heading without an edit here, and today's flags (``--address``,
``--ray-return``, ``--slurm-*``) are what the bundled executors declare."""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from functools import wraps
from typing import Any

import typer
from pydantic import ValidationError

from fmlab.errors import UserInputError
from fmlab.sweep.executors import EXECUTORS


def _param_name(executor: str, field: str) -> str:
    return "x__" + re.sub(r"\W", "_", executor) + "__" + field


def _cli_type(annotation: Any) -> tuple[Any, Any]:
    """(typer annotation, default meaning 'not given') for an option field's annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = (
        args[0] if typing.get_origin(annotation) in (typing.Union, types.UnionType) else annotation
    )
    if base is bool:
        return bool, False
    if typing.get_origin(base) is dict:
        return list[str], []
    if base in (int, float, str):
        return base | None, None
    return str | None, None  # Literal and anything else: pydantic checks the text


def _parameters() -> list[inspect.Parameter]:
    params = []
    for name, spec in EXECUTORS.items():
        flags = spec.flags()
        for field, info in spec.options.model_fields.items():
            kind, default = _cli_type(info.annotation)
            option = typer.Option(
                default,
                *flags[field],
                help=info.description,
                rich_help_panel=f"Executor {name}: {spec.help}",
                show_default=False,
            )
            params.append(
                inspect.Parameter(
                    _param_name(name, field),
                    inspect.Parameter.KEYWORD_ONLY,
                    default=option,
                    annotation=kind,
                )
            )
    return params


def with_executor_flags(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the executors' option flags to command ``fn``; the values given on the command
    line reach it as ``executor_flags = {executor: {field: value}}``."""
    extra = _parameters()
    signature = inspect.signature(fn, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "executor_flags"]

    @wraps(fn)
    def command(**kwargs: Any) -> Any:
        given: dict[str, dict[str, Any]] = {}
        for name, spec in EXECUTORS.items():
            for field in spec.options.model_fields:
                value = kwargs.pop(_param_name(name, field), None)
                if value not in (None, False, [], ()):
                    given.setdefault(name, {})[field] = value
        return fn(**kwargs, executor_flags=given)

    command.__signature__ = signature.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in [*own, *extra]}
    del command.__wrapped__  # typer must read the new signature, not fn's
    return command


def chosen_options(executor: str, given: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The validated options of ``executor`` from the flags given; a flag of another
    executor, a malformed key=value or a bad value is refused naming the flag."""
    spec = EXECUTORS.get(executor)
    for other, values in given.items():
        if other != executor:
            flag = EXECUTORS.get(other).flags()[next(iter(values))][0]
            raise UserInputError(f"{flag} applies to --executor {other} only")
    flags = spec.flags()
    options = dict(given.get(executor, {}))
    for field, value in options.items():
        if isinstance(value, list):  # a dict option given as repeated key=value
            options[field] = _pairs(value, flags[field][0])
    try:
        spec.options.model_validate(options)
    except ValidationError as e:
        lines = []
        for error in e.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            flag = flags.get(field, [field])[0]
            message = error["msg"].removeprefix("Value error, ")
            value = error.get("input")
            shown = f" {value!r}" if value is not None and not isinstance(value, dict) else ""
            lines.append(f"{flag}{shown}: {message}")
        raise UserInputError("; ".join(lines)) from None
    return options


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"{flag} {item!r} is not key=value (e.g. account=abc)")
        pairs[key.strip()] = value.strip()
    return pairs
