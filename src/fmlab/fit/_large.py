"""Fits on many points: a memory limit checked up front, subsamples and rescaled bootstraps.

A fit's memory is the data (linear in the number of points ``n``, a few hundred bytes a
point) plus work arrays that :mod:`fmlab.fit._newton` and the streamed bootstraps keep
bounded. Each fit estimates its peak before allocating anything and refuses, with
:class:`MemoryLimitError`, if that exceeds the limit: ``max_memory=`` (bytes or text such
as ``"8GiB"``), else the environment variable ``FMLAB_FIT_MAX_MEMORY``, else 4 GiB.

The iterative fits (:class:`~fmlab.fit.ChinchillaFit`,
:class:`~fmlab.fit.SaturatingPowerLaw`) cost time linear in ``n`` for every start and every
bootstrap resample. Above ``max_points`` points they (1) run their starts on a uniform
random subsample of ``m = max_points`` points (:func:`subsample`), (2) polish the best
optima found there on all ``n`` points, so the estimate is the full-data optimum, and (3)
bootstrap the subsample and shrink each resample's deviation from the subsample's optimum
by ``sqrt(m / n)`` around the full-data optimum (:func:`rescaled_draws`): the bootstrap of
one random m-point subsample, rescaled as the "m out of n" bootstrap is (Bickel, Götze & van
Zwet 1997; Politis, Romano & Wolf 1999); valid for smooth, root-n consistent estimators
such as these.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_MAX_POINTS",
    "MAX_MEMORY_ENV",
    "MemoryLimitError",
    "Progress",
    "check_memory",
    "csv_shape_estimate",
    "format_bytes",
    "memory_limit",
    "parse_bytes",
    "rescaled_draws",
    "subsample",
]

#: Above this many points the iterative fits subsample (see the module docstring).
DEFAULT_MAX_POINTS = 10_000
DEFAULT_MAX_MEMORY = 4 * 2**30
MAX_MEMORY_ENV = "FMLAB_FIT_MAX_MEMORY"
# A stream of its own for the subsample: the bootstrap keeps default_rng(seed).
_SUBSAMPLE_STREAM = 7_919

#: ``progress(stage, done, total)``: a fit's way to say how far it is.
Progress = Callable[[str, int, int], None]

_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_UNITS |= {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class MemoryLimitError(ValueError):
    """A fit would need more memory than allowed; ``need`` and ``limit`` are bytes."""

    def __init__(self, what: str, need: float, limit: float, hint: str = ""):
        self.what, self.need, self.limit, self.hint = what, int(need), int(limit), hint
        super().__init__(self.message(f"max_memory= or the {MAX_MEMORY_ENV} environment variable"))

    def message(self, override: str) -> str:
        """One line: what, the estimate, the limit, and ``override`` (how to raise it)."""
        return (
            f"{self.what} would need about {format_bytes(self.need)} of memory, over the limit "
            f"of {format_bytes(self.limit)}; to allow it, raise the limit with {override}"
            f"{f', or {self.hint}' if self.hint else ''}"
        )


def parse_bytes(value: str | float | int) -> int:
    """``4GiB``, ``512MB``, ``1.5G``, ``2e9`` or a number → bytes (k, M, G are powers of 10)."""
    if isinstance(value, int | float):
        number, unit = float(value), ""
    else:
        match = re.fullmatch(r"\s*([0-9.]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", str(value).lower())
        if match is None or match.group(2) not in _UNITS:
            raise ValueError(f"not an amount of memory: {value!r} (e.g. 8GiB, 500MB, 2e9)")
        number, unit = float(match.group(1)), match.group(2)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"a memory limit must be > 0, got {value!r}")
    return int(number * _UNITS[unit])


def memory_limit(value: str | float | int | None = None) -> int:
    """The limit in bytes: ``value`` if given, else ``$FMLAB_FIT_MAX_MEMORY``, else 4 GiB."""
    if value is not None:
        return parse_bytes(value)
    env = os.environ.get(MAX_MEMORY_ENV)
    if env:
        try:
            return parse_bytes(env)
        except ValueError as e:
            raise ValueError(f"{MAX_MEMORY_ENV}: {e}") from None
    return DEFAULT_MAX_MEMORY


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def check_memory(what: str, need: float, limit: str | float | int | None, hint: str = "") -> None:
    """Raise :class:`MemoryLimitError` if ``need`` bytes exceed the limit (see above)."""
    allowed = memory_limit(limit)
    if need > allowed:
        raise MemoryLimitError(what, need, allowed, hint)


def subsample(n: int, max_points: int | None, seed: int) -> np.ndarray | None:
    """Sorted positions of ``max_points`` of the ``n`` points, uniform without replacement,
    or None when all points are used (``max_points`` None or ``n <= max_points``).

    Drawn by ``np.random.default_rng([seed, 7919]).choice(n, max_points, replace=False)``.
    """
    if max_points is None or n <= max_points:
        return None
    rng = np.random.default_rng([seed, _SUBSAMPLE_STREAM])
    return np.sort(rng.choice(n, int(max_points), replace=False))


def rescaled_draws(
    full: np.ndarray, center: np.ndarray, draws: np.ndarray, m: int, n: int
) -> np.ndarray:
    """``full + sqrt(m / n) · (draws - center)``: bootstrap draws of an ``m``-point subsample
    (around its own optimum ``center``) moved to the full data's optimum and shrunk to the
    spread of an ``n``-point estimate."""
    return full + math.sqrt(m / n) * (draws - center)


def stage_progress(progress: Progress | None, stage: str, lo: int, size: int, total: int):
    """A ``(done, of)`` callback for one call that covers items ``lo : lo + size`` of a
    stage's ``total``, reporting to ``progress(stage, done, total)`` (None: no callback)."""
    if progress is None:
        return None
    return lambda done, of: progress(stage, lo + (size * done) // max(of, 1), total)


def validate_max_points(value: int | None, minimum: int) -> None:
    if value is not None and value < minimum:
        raise ValueError(f"max_points must be None or >= {minimum}, got {value}")


def csv_shape_estimate(path: Path) -> tuple[int, int]:
    """Data rows and columns of a CSV, estimated from its size and first megabyte."""
    with path.open("rb") as f:
        head = f.read(1 << 20)
    lines = head.splitlines()
    if len(lines) < 2:
        return max(len(lines) - 1, 0), 1
    body = lines[1:-1] if len(head) == 1 << 20 and len(lines) > 2 else lines[1:]
    per_row = max(1.0, (sum(map(len, body)) + len(body)) / len(body))
    size = path.stat().st_size - len(lines[0]) - 1
    return int(size / per_row) + 1, lines[0].count(b",") + 1
