"""The rules of docs/architecture.md, checked on the source: no import cycle, the library
never imports a study, models know no data, measure/ is pure math, reports are handed
their figures. Imports are read statically (function-level ones included), so a lazy
import cannot hide a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "fmlab").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """fmlab modules imported anywhere in ``module`` (``from a import b`` is ``a.b`` when
    that is a module, else ``a``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {t for a in node.names if (t := _resolve(a.name))}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.startswith("fmlab"):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in MODULES else _resolve(base) or base)
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert _cycles() == []


def _importers_of(prefix: str) -> set[str]:
    return {
        m
        for m, deps in GRAPH.items()
        if any(d == prefix or d.startswith(prefix + ".") for d in deps)
    }


def _within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize(
    ("imported", "allowed"),
    [
        # the library never imports a study: only the catalog finds them (and studies
        # import their own modules)
        ("fmlab.studies", ("fmlab.studies", "fmlab.catalog")),
        # models know no data
        ("fmlab.tasks", ("fmlab.tasks", "fmlab.studies", "fmlab.cli")),
        # reports are handed their figures; only front ends look studies up
        ("fmlab.catalog", ("fmlab", "fmlab.cli", "fmlab.suites", "fmlab.sweep")),
    ],
)
def test_who_may_import_what(imported, allowed):
    assert {m for m in _importers_of(imported) if not _within(m, *allowed)} == set()


def test_measure_is_pure_math():
    deps = {d for m in MODULES if _within(m, "fmlab.measure") for d in GRAPH[m]}
    assert {
        d for d in deps if not _within(d, "fmlab.measure", "fmlab.stats", "fmlab.errors")
    } == set()


def test_report_never_imports_a_study_or_the_catalog():
    deps = {d for m in MODULES if _within(m, "fmlab.report") for d in GRAPH[m]}
    assert {d for d in deps if _within(d, "fmlab.studies", "fmlab.catalog", "fmlab.study")} == set()


def test_no_source_file_is_over_400_lines():
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}
