"""User files of one JSON object per line (facts, preference pairs, texts): every problem
a user or a corrupted file can cause is one :class:`UserInputError` naming the file and
the line, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fmlab.errors import UserInputError


def read_objects(
    path: str | Path, what: str, expected: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, object)`` for every non-blank line of the JSONL file at ``path``; ``where``
    is ``path:line`` for the caller's own checks. ``what`` names the file in errors ("pair
    file"), ``expected`` says what a line holds ('an object with "text"')."""
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"{what} {p} does not exist")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserInputError(f"{what} {p} cannot be read: {e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{p}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserInputError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserInputError(f"{where}: expected {expected}")
        yield where, row
