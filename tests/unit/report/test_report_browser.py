"""Reports in a real browser (issue 17): every page loads in headless Chromium without a
console error or horizontal overflow at 1400 and 1920 px — tables wrap inside their
column, figures fit. Skipped where Chromium is absent (Debian: apt-get install -y
chromium). The slow test does it for every report of a smoke ``reproduce``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fmlab.report import write_index, write_run_report
from fmlab.report.figures import new_figure, styled
from fmlab.stats import over_seeds
from fmlab.store import Run

TOOL = Path(__file__).resolve().parents[3] / "tools" / "report_check.py"


def _tool():
    spec = importlib.util.spec_from_file_location("report_check", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _tool()
BROWSER = check.find_browser()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium (apt-get install chromium)")


class _WideStudy:
    """A report source with a three-panel figure (the kind that shrank to 7 px text)."""

    title = "A study with long names and many seeds"
    citation = "Nobody 2026"

    @staticmethod
    def figures(run):
        fig, axes = new_figure(ncols=3)
        for i, ax in enumerate(axes):
            ax.plot([0, 1, 2], [i, i + 1, i + 0.5], label=f"series {i}")
            ax.legend()
        return {"three_panels": styled(fig)}


def _crowded_run(root: Path) -> Path:
    """A run whose summary is as wide as reports get: long metric names, per-seed lists
    of twelve values, and intervals (the icl/scaling tables ran past the column)."""
    run = Run.start(root, "crowded", "r1", {"x": 1})
    run.log(0, {"loss": 1.0})
    metrics = {}
    for i in range(6):
        name = f"sparse_least_squares_transformer_err_at_2d_by_k_variant_{i}_final"
        metrics |= over_seeds(name, [0.1 * i + 0.01 * s for s in range(12)])
    metrics["curve_by_k"] = [1.234567e-23 * k for k in range(1, 25)]
    run.finish({"study": "crowded", "run_id": "r1", "status": "completed", "metrics": metrics,
                "claims": []})  # fmt: skip
    write_run_report(run.path, _WideStudy())
    return run.path


@pytest.mark.parametrize("width", [1400, 1920])
def test_a_crowded_report_fits_its_column(tmp_path, width):
    path = _crowded_run(tmp_path)
    result = check.check_page(path / "report.html", width, BROWSER)
    assert check.problems(result, min_font=8.0) == [], result


def test_the_check_sees_overflow_and_console_errors(tmp_path):
    """The measure itself can fail: a too-wide element and a script error are caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><head></head><body><main><div style='width:3000px'>wide</div>"
        "<script>undefined_function_17()</script></main></body></html>"
    )
    result = check.check_page(page, 1400, BROWSER)
    found = check.problems(result, min_font=8.0)
    assert result["page_overflow"] > 1000
    assert any("undefined_function_17" in p for p in found), found


@pytest.mark.slow
def test_every_report_of_a_smoke_reproduce_loads_cleanly(smoke_reproduce):
    # the session's smoke reproduce (conftest); the pages are what is checked here
    tmp_path = smoke_reproduce[0]
    pages = check.find_pages(tmp_path)
    assert len(pages) >= 10, pages  # every study's report and the index
    bad = {}
    for page in pages:
        for width in (1400, 1920):
            found = check.problems(check.check_page(page, width, BROWSER), min_font=8.0)
            if found:
                bad[f"{page.relative_to(tmp_path)} @ {width}"] = found
    assert bad == {}


def test_an_index_page_fits(tmp_path):
    path = _crowded_run(tmp_path)
    index = write_index([path], tmp_path / "index.html")
    result = check.check_page(index, 1400, BROWSER)
    assert check.problems(result, min_font=8.0) == [], result
