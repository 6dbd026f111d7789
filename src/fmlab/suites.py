"""Suites: named lists of (study, preset, overrides) that ``fmlab reproduce`` runs.

``quick`` is every registered study's ``quick`` preset, so a new study joins it by
registering. ``demo`` is the curated selection ``make demo`` runs: about ten minutes
on a 2-core CPU, every item still showing its phenomenon for real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmlab.catalog import all_studies
from fmlab.registry import Registry
from fmlab.runner import RunResult


@dataclass(frozen=True)
class SuiteItem:
    study: str
    preset: str
    overrides: tuple[str, ...] = ()


SUITES: Registry[Callable[[], list[SuiteItem]]] = Registry("suite")


@SUITES.register("quick")
def quick() -> list[SuiteItem]:
    return [SuiteItem(s.name, "quick") for s in all_studies()]


@SUITES.register("smoke")
def smoke() -> list[SuiteItem]:
    return [SuiteItem(s.name, "smoke") for s in all_studies()]


# Longest first, so that two workers finish together: grokking quick (~7 min on one
# core) beside icl quick and representations quick (~3.5 + ~3 min).
DEMO = (
    SuiteItem("grokking", "quick"),
    SuiteItem("icl", "quick", ("sparse_task=null", "sparse_steps=null")),  # sparse: ~12 min
    SuiteItem("representations", "quick"),
)


@SUITES.register("demo")
def demo() -> list[SuiteItem]:
    return list(DEMO)


def suite_items(name: str) -> list[SuiteItem]:
    return SUITES.get(name)()


def run_item(
    item: SuiteItem,
    out: Path,
    force: bool = False,
    progress: Any = None,
    execution: dict[str, Any] | None = None,
) -> RunResult:
    """Run one suite item into ``out`` and write its report; ``execution`` holds
    ``execute``'s device and checkpoint policy."""
    from fmlab.catalog import get_study
    from fmlab.report import write_run_report
    from fmlab.runner import execute

    spec = get_study(item.study)
    cfg = spec.resolve(item.preset, item.overrides)
    result = execute(
        spec, cfg, out, force=force, progress=progress, preset=item.preset, **(execution or {})
    )
    write_run_report(result.path, spec)
    return result


def run_parallel(
    items: list[SuiteItem],
    out: Path,
    *,
    jobs: int,
    threads: int,
    force: bool = False,
    execution: dict[str, Any] | None = None,
) -> Iterator[tuple[int, RunResult]]:
    """Run the items in ``jobs`` worker processes (:class:`fmlab.parallel.ProcessPool`) of
    ``threads`` torch threads each, yielding ``(index, result)`` as each finishes. Every
    run writes only its own run directory (summary last), so a crash or Ctrl-C loses no
    finished run."""
    from fmlab.parallel import Done, Failed, ProcessPool

    with ProcessPool(jobs, threads) as pool:
        work = [(item, out, force, None, execution) for item in items]
        for outcome in pool.run(run_item, work):
            if isinstance(outcome, Done):
                yield outcome.index, outcome.value
            elif isinstance(outcome, Failed) and outcome.error is not None:
                raise outcome.error
            else:
                what = outcome.traceback if isinstance(outcome, Failed) else outcome.message
                raise RuntimeError(f"{items[outcome.index].study}: {what}")
