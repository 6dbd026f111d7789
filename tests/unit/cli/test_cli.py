import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmlab.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_list_json_shows_studies_and_registries():
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    grok = next(s for s in data["studies"] if s["name"] == "grokking")
    assert grok["presets"] == ["smoke", "quick", "paper"]
    assert "attention" in data["mixers"] and "modular" in data["tasks"]
    assert {"demo", "quick"} <= set(data["suites"])


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "grokkin"], ["unknown study 'grokkin'", "Did you mean 'grokking'"]),
        (["run", "grokking", "-p", "quik"], ["Did you mean 'quick'"]),
        (["run", "grokking", "--set", "model.d_model=abc"], ["model.d_model", "valid integer"]),
        (["run", "grokking", "--set", "train.lrr=1"], ["train.lrr", "Did you mean lr"]),
        (["run", "grokking", "--set", "oops"], ["key=value"]),
        (["reproduce", "--suite", "qiuck"], ["unknown suite", "quick"]),
    ],
)
def test_bad_input_is_one_clear_error(args, fragments, tmp_path):
    result = invoke(*args, *(["--out", str(tmp_path)] if args[0] == "run" else []))
    assert result.exit_code == 2
    text = re.sub(r"\s+", " ", result.output)
    for fragment in fragments:
        assert fragment in text
    assert "Traceback" not in result.output
    assert not list(tmp_path.rglob("config.json"))  # nothing was started


def test_run_show_report_roundtrip(tmp_path):
    out = tmp_path / "runs"
    args = ["run", "grokking", "-p", "smoke", "--set", "train.steps=20", "--out", str(out)]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed" and summary["preset"] == "smoke"
    assert {c["id"] for c in summary["claims"]} >= {"delayed-generalization"}
    run_dir = summary["path"]
    html = Path(summary["report"]).read_text()
    assert "data:image/png;base64," in html and "Claims" in html
    assert not re.search(r"(src|href)=['\"]https?://", html)  # self-contained
    shown = invoke("show", run_dir, "--json")
    assert json.loads(shown.stdout)["run_id"] == summary["run_id"]
    assert invoke("show", run_dir).exit_code == 0
    rerun = json.loads(invoke(*args, "--json").output)
    assert rerun["reused"] is True
    rep = invoke("report", str(out), "--json")
    assert rep.exit_code == 0 and json.loads(rep.stdout)["reports"]
    assert invoke("show", str(tmp_path)).exit_code == 2
    assert invoke("report", str(tmp_path / "nope")).exit_code == 2


def test_reproduce_in_parallel_writes_every_run_and_an_index_then_reuses_them(smoke_reproduce):
    from fmlab.catalog import all_studies

    out, data, code, stderr = smoke_reproduce  # reproduce --suite smoke -j 2 (conftest)
    assert code == 0 and data is not None, stderr
    studies = [r["study"] for r in data["runs"]]
    assert studies == [s.name for s in all_studies()]  # suite order, whatever finished first
    assert {r["status"] for r in data["runs"]} == {"completed"}
    index = Path(data["index"]).read_text()
    for run in data["runs"]:
        assert (Path(run["path"]) / "report.html").is_file()
        assert Path(run["path"]).name in index
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")}
    again = invoke("reproduce", "--suite", "smoke", "-j", "1", "--out", str(out), "--json")
    assert again.exit_code == 0, again.output
    assert [r["path"] for r in json.loads(again.stdout)["runs"]] == [
        r["path"] for r in data["runs"]
    ]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")} == stamps  # reused


def test_the_readme_study_example_runs_from_the_current_directory(tmp_path, monkeypatch):
    import sys

    from fmlab.study import STUDIES

    readme = (Path(__file__).parents[3] / "README.md").read_text()
    code = re.search(r"### Writing a study.*?```python\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "memorise.py").write_text(code)
    monkeypatch.chdir(tmp_path)  # --import finds modules here
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        out = tmp_path / "runs"
        result = invoke("run", "memorise", "--import", "memorise", "--out", str(out), "--json")
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["status"] == "completed"
        assert [c["passed"] for c in summary["claims"]] == [True]
    finally:
        STUDIES.remove("memorise")
        sys.modules.pop("memorise", None)
