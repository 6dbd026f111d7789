"""A user's own study works with every command (issue 17): ``--import`` takes a module
name or a ``.py`` file, a failed import says where it looked, ``report`` on a folder that
mixes bundled and user-study runs writes every report (an unknown study or failing
figures cost one warning line for that run), and ``show``, ``status``, ``table`` and
``compare`` take the same ``--import``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmlab.cli import app

runner = CliRunner()

MEMORISE = '''
"""A toy user study (no torch): memorise a table; each seed's accuracy rises to 1."""
from pydantic import Field

from fmlab.claims import Claim
from fmlab.config import Config
from fmlab.report.figures import new_figure, plot_curves, styled
from fmlab.stats import over_seeds
from fmlab.study import study


class MemoriseConfig(Config):
    seeds: list[int] = Field([0, 1, 2], min_length=1)
    steps: int = 6
    rate: float = 0.5


def figures(run):
    BROKEN
    fig, ax = new_figure()
    plot_curves(ax, run.metrics, ["train_acc"], logx=False)
    return {"memorise_curve": styled(fig)}


PRESETS = {name: MemoriseConfig() for name in ("smoke", "quick", "paper")}
CLAIMS = (
    Claim("memorises", "Toy 2026", "train accuracy reaches 0.9", "train_acc_final", ">=", 0.9),
    Claim("stays-low", "Toy 2026", "accuracy stays below 0.5", "train_acc_final", "<", 0.5),
)


@study("memorise", config=MemoriseConfig, presets=PRESETS, claims=CLAIMS,
       title="Memorise a table", citation="Toy 2026", figures=figures)
def run(cfg, run):
    finals = []
    for seed in cfg.seeds:
        for step in range(cfg.steps + 1):
            acc = 1 - (1 - cfg.rate) ** step * (1 + 0.1 * seed) / 1.2
            run.log(step, {"train_acc": min(acc, 1.0)}, seed=seed)
        finals.append(min(acc, 1.0))
    return over_seeds("train_acc_final", finals)
'''


def write_study(directory: Path, *, broken_figures: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "memorise.py"
    broken = "raise ValueError('no figure today')" if broken_figures else "pass"
    path.write_text(MEMORISE.replace("BROKEN", broken))
    return path


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """The user's current directory; the study is forgotten afterwards."""
    from fmlab.study import STUDIES

    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("memorise", None)
    if "memorise" in STUDIES:
        STUDIES.remove("memorise")


def fmlab(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def fmlab_json(*args: str) -> dict:
    return json.loads(fmlab(*args, "--json").stdout)


def run_memorise(*sets: str, out: str = "runs", module: str = "plugins/memorise.py") -> dict:
    args = ["run", "memorise", "-p", "smoke", "--import", module, "--out", out, "--threads", "1"]
    return fmlab_json(*args, *[a for s in sets for a in ("--set", s)])


def test_import_a_file_path_and_by_module_name(user_dir):
    write_study(user_dir / "plugins")
    ran = run_memorise()
    assert ran["status"] == "completed" and ran["study"] == "memorise"
    page = Path(ran["report"]).read_text()
    assert "Memorise a table" in page and "alt='memorise_curve'" in page
    # the same file again by path and then as a module on the path: its code runs once
    fmlab("list", "--import", "./plugins/memorise.py", "--import", "plugins/memorise.py")


def test_sweep_workers_get_absolute_file_paths(user_dir):
    from fmlab.plugins import absolute

    got = absolute(["./plugins/memorise.py", "pkg.my_study", "x.py"])
    assert got == (
        str(user_dir / "plugins" / "memorise.py"),
        "pkg.my_study",
        str(user_dir / "x.py"),
    )


def test_a_failed_import_says_where_it_looked(user_dir):
    missing = fmlab("show", "x", "--import", "no_such_module_17", code=2).output
    assert "no_such_module_17" in missing and str(user_dir) in missing
    assert "sys.path" in missing
    no_file = fmlab("show", "x", "--import", "./nowhere/mod.py", code=2).output
    assert "no such file" in no_file and str(user_dir / "nowhere" / "mod.py") in no_file
    (user_dir / "bad.py").write_text("import no_such_dependency_17\n")
    dep = fmlab("show", "x", "--import", "./bad.py", code=2).output
    assert "no_such_dependency_17" in dep and "failed" in dep


def test_report_on_a_folder_of_bundled_and_user_runs(user_dir):
    write_study(user_dir / "plugins")
    mine = run_memorise()
    sys.modules.pop("memorise", None)
    from fmlab.study import STUDIES

    STUDIES.remove("memorise")  # a fresh process: the user's study is not registered
    bundled = fmlab_json("run", "inspect", "-p", "smoke", "--out", "runs", "--threads", "1",
                         "--no-report")  # fmt: skip
    result = fmlab("report", "runs")
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "'memorise'" in warnings[0] and "--import" in warnings[0]
    assert (Path(bundled["path"]) / "report.html").is_file()
    assert "No figures." in (Path(mine["path"]) / "report.html").read_text()
    assert "memorise" in (user_dir / "runs" / "index.html").read_text()
    fmlab("report", "runs", "--import", "plugins/memorise.py")
    assert "alt='memorise_curve'" in (Path(mine["path"]) / "report.html").read_text()


def test_a_user_study_whose_figures_fail_costs_one_line(user_dir):
    write_study(user_dir / "plugins", broken_figures=True)
    first = run_memorise("steps=4")
    second = run_memorise("steps=5")
    result = fmlab("report", "runs", "--import", "plugins/memorise.py")
    lines = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(lines) == 2 and all("no figure today" in line for line in lines)
    for ran in (first, second):
        page = (Path(ran["path"]) / "report.html").read_text()
        assert "figures failed: ValueError: no figure today" in page
        assert "stays-low" in page and "Summary metrics" in page  # the rest is there


def test_show_status_and_table_take_import(user_dir):
    write_study(user_dir / "plugins")
    ran = run_memorise()
    shown = fmlab("show", ran["path"], "--import", "plugins/memorise.py").output
    assert "Memorise a table" in shown and "stays-low" in shown
    fmlab("sweep", "memorise", "-p", "smoke", "--import", "plugins/memorise.py",
          "--grid", "rate=0.5,0.7", "--name", "mem", "--out", "runs")  # fmt: skip
    status = fmlab_json("status", "mem", "--out", "runs", "--import", "plugins/memorise.py")
    assert status["total"] == 2 and status["done"] == 2
    table = fmlab_json("table", "mem", "--out", "runs", "--import", "plugins/memorise.py")
    assert {row["rate"] for row in table["rows"]} == {0.5, 0.7}
    fmlab("table", "mem", "--out", "runs", "--import", "./nowhere.py", code=2)


def test_compare_two_runs_of_a_user_study(user_dir):
    write_study(user_dir / "plugins")
    a = run_memorise()
    b = run_memorise("seeds=[3,4]")
    c = run_memorise("rate=0.7")
    page = user_dir / "cmp.html"
    unpaired = fmlab_json("compare", a["path"], b["path"], "--import", "plugins/memorise.py",
                          "-o", str(page))  # fmt: skip
    assert unpaired["config_diff"] == [{"key": "seeds", "values": [[0, 1, 2], [3, 4]]}]
    row = next(m for m in unpaired["metrics"] if m["metric"] == "train_acc_final")
    diff = row["diffs"][0]
    assert diff["paired"] is False and diff["low"] is None  # no seed in common
    assert diff["estimate"] == pytest.approx(row["runs"][1]["value"] - row["runs"][0]["value"])
    paired = fmlab_json("compare", a["path"], c["path"], "-o", str(page))
    row = next(m for m in paired["metrics"] if m["metric"] == "train_acc_final")
    diff = row["diffs"][0]
    assert diff["paired"] is True and diff["n"] == 3 and diff["seeds"] == [0, 1, 2]
    by_seed = lambda r: json.loads(  # noqa: E731
        (Path(r["path"]) / "summary.json").read_text()
    )["metrics"]["train_acc_final_by_seed"]
    gaps = [y - x for x, y in zip(by_seed(a), by_seed(c), strict=True)]
    assert diff["estimate"] == pytest.approx(sum(gaps) / 3)
    assert diff["low"] <= diff["estimate"] <= diff["high"]
    claims = {cl["id"]: cl for cl in paired["claims"]}
    assert [r["passed"] for r in claims["stays-low"]["runs"]] == [False, False]
    assert "not < 0.5" in claims["stays-low"]["runs"][0]["reason"]
    html = page.read_text()
    assert "Config differences" in html and "paired, 3 seeds" in html
    assert "alt='train_acc'" in html  # the overlaid curve
    bad = fmlab("compare", a["path"], code=2).output
    assert "two run directories" in bad
    fmlab("compare", a["path"], str(user_dir / "nothing"), code=2)
