"""Helpers shared by the benchmark scripts: interleaved timing and a JSON line.

Every benchmark states its results as *ratios* of two contenders timed in the same
rounds (A, B, A, B …): ``speedup(times, base, new)`` divides round by round, and
``emit`` prints one ``FMLAB_BENCH {json}`` line per benchmark that ``benchmarks/run_all.py``
(``make bench``) gathers into one table: median over the rounds with min–max.
"""

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


def speedup(times: dict[str, list[float]], base: str, new: str) -> list[float]:
    """Per-round ratios time(base) / time(new): > 1 means ``new`` is faster. Each pair
    comes from one round, so a load change between rounds cancels."""
    return [b / n for b, n in zip(times[base], times[new], strict=True)]


def row(label: str, ratios: list[float], target: str = "", note: str = "") -> dict:
    """One line of the ``make bench`` table."""
    return {
        "label": label,
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "rounds": len(ratios),
        "target": target,
        "note": note,
    }


def emit(benchmark: str, rows: list[dict], **extra) -> None:
    """Print the rows for the table (one ``FMLAB_BENCH`` line) and a readable summary."""
    for r in rows:
        print(
            f"  {r['label']:<48} {r['median']:6.2f}x  "
            f"(min {r['min']:.2f}, max {r['max']:.2f}, {r['rounds']} rounds)"
            + (f"  target {r['target']}" if r["target"] else "")
        )
    print("FMLAB_BENCH " + json.dumps({"benchmark": benchmark, "rows": rows, **extra}))


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
