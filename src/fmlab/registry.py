"""Named registries (studies, tasks, models, mixers, instruments) filled by decorators.

A registry maps a name to an object. Looking up a name that is not there raises
:class:`UnknownNameError`, whose message lists the close matches ("did you mean …?")
and every known name, so a typo on the command line is a one-glance fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from fmlab.errors import UserInputError

T = TypeVar("T")


class UnknownNameError(KeyError, UserInputError):
    """A name that is not in a registry; the message suggests the closest ones. It is a
    KeyError (a lookup failed) and a user-input error (a ValueError): raised inside a
    config validator, it becomes a field error naming the field."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        hint = did_you_mean(name, known)
        listing = ", ".join(known) if known else "(none registered)"
        self.message = f"unknown {kind} {name!r}.{hint} Known: {listing}."
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.message


def did_you_mean(name: str, known: list[str]) -> str:
    """`` Did you mean 'x' or 'y'?`` for the close matches of a typo, else ``""``."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class Registry(Generic[T]):
    """A name → object table; ``@registry.register("name")`` adds to it."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def remove(self, name: str) -> T:
        """Unregister ``name`` (e.g. a test's temporary entry); returns what it held."""
        try:
            return self._items.pop(name)
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]
