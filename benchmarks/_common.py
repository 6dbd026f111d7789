"""Helpers shared by the benchmark scripts: interleaved timing and a JSON line."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable


def interleaved(
    fns: dict[str, Callable[[], None]], repeats: int, warmup: bool = False
) -> dict[str, list[float]]:
    """Time each function ``repeats`` times, alternating A, B, A, B … so that a change
    in machine load hits every contender alike; returns seconds per call. ``warmup``
    calls each once first (allocator, first-call dispatch)."""
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def ratio(times: dict[str, list[float]], num: str, den: str) -> float:
    return statistics.median(times[num]) / statistics.median(times[den])


def report(title: str, times: dict[str, list[float]], extra: dict) -> None:
    print(title)
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<28} median {med:8.4f} s  (min {min(ts):.4f}, max {max(ts):.4f})")
    for key, value in extra.items():
        print(f"  {key}: {value}")
    print(
        json.dumps(
            {
                "benchmark": title,
                **extra,
                "medians_s": {k: statistics.median(v) for k, v in times.items()},
            }
        )
    )
