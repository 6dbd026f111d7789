import pytest

from fmlab.claims import Claim
from fmlab.config import Config
from fmlab.runner import execute
from fmlab.store import read_metrics, read_summary
from fmlab.study import Study
from fmlab.train import Diverged


class Cfg(Config):
    x: float = 1.0
    mode: str = "ok"


def body(cfg: Cfg, run):
    run.log(0, {"loss": cfg.x})
    if cfg.mode == "diverge":
        raise Diverged(7, float("nan"))
    if cfg.mode == "raise":
        raise RuntimeError("boom")
    return {"score": cfg.x * 2}


STUDY = Study(
    name="toy",
    title="toy",
    citation="-",
    config=Cfg,
    presets={"smoke": Cfg(), "quick": Cfg(), "paper": Cfg()},
    claims=(Claim("big", "-", "score is big", "score", ">=", 3.0),),
    run=body,
)


def test_completed_run_summary_and_reuse(runs_dir):
    first = execute(STUDY, Cfg(x=2.0), runs_dir, preset="quick")
    assert first.status == "completed" and not first.reused
    s = read_summary(first.path)
    assert s["metrics"] == {"score": 4.0} and s["claims"][0]["passed"] is True
    assert s["preset"] == "quick" and s["env"]["device"] == "cpu" and s["wall_s"] >= 0
    assert s["config"] == {"x": 2.0, "mode": "ok"}
    again = execute(STUDY, Cfg(x=2.0), runs_dir)
    assert again.reused and again.path == first.path
    forced = execute(STUDY, Cfg(x=2.0), runs_dir, force=True)
    assert not forced.reused


def test_diverged_is_a_result_with_the_step(runs_dir):
    result = execute(STUDY, Cfg(mode="diverge"), runs_dir)
    assert result.status == "diverged"
    assert result.summary["metrics"] == {"diverged_at_step": 7}
    assert result.summary["claims"][0]["passed"] is False
    assert read_metrics(result.path)["value"].tolist() == [1.0]  # the curve so far is kept
    assert execute(STUDY, Cfg(mode="diverge"), runs_dir).reused


def test_failed_run_records_its_traceback_and_is_rerun(runs_dir):
    result = execute(STUDY, Cfg(mode="raise"), runs_dir)
    assert result.status == "failed" and "RuntimeError: boom" in result.summary["error"]
    assert not execute(STUDY, Cfg(mode="raise"), runs_dir).reused  # failed runs are retried
    with pytest.raises(RuntimeError, match="boom"):
        execute(STUDY, Cfg(mode="raise"), runs_dir, reraise=True)
    assert read_summary(result.path)["status"] == "failed"


def test_distinct_configs_get_distinct_directories(runs_dir):
    a = execute(STUDY, Cfg(x=1.0), runs_dir)
    b = execute(STUDY, Cfg(x=1.5), runs_dir)
    assert a.path != b.path and a.path.parent == b.path.parent == runs_dir / "toy"
