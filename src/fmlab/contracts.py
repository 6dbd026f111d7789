"""The shapes of the files fmlab writes and reads back, checked on every read.

A run directory or a sweep directory may hold a file that is truncated (a full disk, a
copy cut short), not UTF-8, not JSON, or JSON of the wrong shape (edited by hand, written
by another tool). Every reader goes through :func:`read_json` with the file's model, so
such a file is a :class:`CorruptFileError` naming its path and what is wrong — which the
callers turn into "rerun it" or "skip it, with a one-line warning" — never a traceback
deep inside a report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from fmlab.errors import UserInputError

STATUSES = ("completed", "diverged", "failed")


class CorruptFileError(UserInputError):
    """A file that cannot be read as what it should be; ``path`` names it."""

    def __init__(self, path: Path | str, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


class _Contract(BaseModel):
    model_config = ConfigDict(extra="allow")  # newer versions may add keys


class ClaimRecord(_Contract):
    id: str
    source: str = ""
    statement: str = ""
    metric: str = ""
    value: float | None = None
    ci: list[float | None] | None = None
    threshold: str = ""
    passed: bool | None = None
    note: str = ""


class SummaryFile(_Contract):
    """``summary.json``: written last; its presence means the run finished."""

    study: str
    run_id: str
    status: Literal["completed", "diverged", "failed"]
    preset: str | None = None
    config: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    claims: list[ClaimRecord] = []
    env: dict[str, Any] = {}
    wall_s: float | None = None
    error: str | None = None


class ConfigFile(_Contract):
    """``config.json``: the study, the run id and the resolved config."""

    study: str
    run_id: str
    config: dict[str, Any]


class SweepRunRecord(_Contract):
    run_id: str
    values: dict[str, Any] = {}


class SweepFile(_Contract):
    """``sweep.json``: a sweep's spec and its runs."""

    name: str
    sweep_id: str
    study: str
    spec: dict[str, Any]
    runs: list[SweepRunRecord]
    swept: list[str] = []
    seed_key: str | None = None
    metrics: list[str] = []


def read_json(path: Path, model: type[_Contract]) -> dict[str, Any] | None:
    """The JSON object at ``path`` if it follows ``model`` — normalised by it (defaults
    filled in, extra keys kept) — or None if the file is absent; otherwise a
    :class:`CorruptFileError` that says what is wrong with it."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:  # a directory under the file's name, no permission …
        raise CorruptFileError(path, f"cannot be read ({e.strerror or e})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CorruptFileError(path, "is not UTF-8 text") from None
    except ValueError as e:
        hint = " (truncated?)" if raw.strip() else " (empty)"
        raise CorruptFileError(path, f"is not valid JSON{hint}: {e}") from None
    try:
        return model.model_validate(data).model_dump()
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise CorruptFileError(
            path, f"is not a valid {path.name}: {where}: {first['msg']}"
        ) from None
