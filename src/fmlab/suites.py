"""Suites: named lists of (study, preset, overrides) that ``fmlab reproduce`` runs.

``quick`` is every registered study's ``quick`` preset, so a new study joins it by
registering. ``demo`` is the curated selection ``make demo`` runs: about ten minutes
on a 2-core CPU, every item still showing its phenomenon for real.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fmlab.registry import Registry
from fmlab.study import all_studies


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


DEMO = (SuiteItem("grokking", "quick"),)


@SUITES.register("demo")
def demo() -> list[SuiteItem]:
    return list(DEMO)


def suite_items(name: str) -> list[SuiteItem]:
    return SUITES.get(name)()
