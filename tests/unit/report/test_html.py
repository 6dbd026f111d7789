"""Run pages: self-contained, and nothing read from a run directory becomes markup."""

from __future__ import annotations

import json

import pytest

from fmlab.contracts import CorruptFileError
from fmlab.errors import FmlabWarning
from fmlab.report import write_index, write_run_report
from fmlab.store import Run


def _run(tmp_path, study="<script>alert(1)</script>", status="completed"):
    run = Run.start(tmp_path, "s", "r1", {"x": 1})
    run.log(0, {"loss": 1.0})
    run.finish({"study": study, "run_id": "r1", "status": "completed", "metrics": {"a": 1.0},
                "claims": []})  # fmt: skip
    summary = json.loads((run.path / "summary.json").read_text()) | {"status": status}
    (run.path / "summary.json").write_text(json.dumps(summary))
    config = json.loads((run.path / "config.json").read_text()) | {"study": study}
    (run.path / "config.json").write_text(json.dumps(config))
    return run.path


def test_names_from_disk_are_escaped(tmp_path):
    path = _run(tmp_path)
    page = write_run_report(path).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    index = write_index([path], tmp_path / "index.html").read_text()
    assert "<script>" not in index


def test_a_corrupt_run_is_refused_by_name_and_left_out_of_the_index(tmp_path):
    bad = _run(tmp_path / "a", status="<b onmouseover=x>")
    good = _run(tmp_path / "b", study="fine")
    with pytest.raises(CorruptFileError, match=r"summary\.json: is not a valid summary\.json"):
        write_run_report(bad)
    with pytest.warns(FmlabWarning, match="leaving it out of the index"):
        index = write_index([bad, good], tmp_path / "index.html").read_text()
    assert "fine" in index and "onmouseover" not in index


def test_a_report_without_its_study_shows_the_runs_own_numbers(tmp_path):
    page = write_run_report(_run(tmp_path, study="gone")).read_text()
    assert "<h1>gone</h1>" in page and "No figures." in page and ">a<" in page
