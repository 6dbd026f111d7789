"""Experiment trackers (--log-to, fmlab export --to): what each one wrote is read back
with the tracker's own reader. A tracker's test is skipped only when its library is not
installed (pip install 'fmlab[trackers]')."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest
from tests.unit.trackers.readers import mlflow_runs, tensorboard_run, wandb_run
from typer.testing import CliRunner

from fmlab.catalog import get_study
from fmlab.cli import app
from fmlab.config import config_hash
from fmlab.errors import UserInputError
from fmlab.trackers import TRACKERS, TrackerSpec, export_run, metric_key, parse_specs
from fmlab.trackers import base as tracker_base


def needs(module):
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None, reason=f"{module} is not installed"
    )


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(tracker_base, "FLUSH_EVERY_S", 0.0)  # stream every row at once


def run_toy(runs, trackers=(), **overrides):
    from fmlab.runner import execute

    study = get_study("sweep-toy")
    cfg = study.resolve("smoke", [f"{k}={v}" for k, v in overrides.items()])
    return execute(study, cfg, runs, preset="smoke", trackers=trackers)


def expected_loss(result):
    from fmlab.store import read_metrics

    frame = read_metrics(result.path)
    return [(int(r.step), float(r.value)) for r in frame.itertuples() if r.name == "loss"]


def same_curve(got, want):
    """Same steps, same values (TensorBoard keeps float32)."""
    return [s for s, _ in got] == [s for s, _ in want] and [v for _, v in got] == pytest.approx(
        [v for _, v in want], rel=1e-6
    )


# ---- streaming while a run trains ---------------------------------------------------------


@needs("tensorboard")
def test_tensorboard_streams_rows_while_the_run_trains_then_its_summary(toy, tmp_path):
    runs = tmp_path / "runs"
    (toy.marks / "hold").touch()  # the run waits before its last step until released
    box = {}
    thread = threading.Thread(
        target=lambda: box.update(r=run_toy(runs, ["tensorboard"], seed=3)), daemon=True
    )
    thread.start()
    study = get_study("sweep-toy")
    run_id = config_hash("sweep-toy", study.resolve("smoke", ["seed=3"]))
    logdir = runs / "tensorboard" / "sweep-toy" / run_id
    deadline, seen = time.monotonic() + 120, {}
    while time.monotonic() < deadline and len(seen.get("loss/seed:3", [])) < 4:
        if logdir.exists():
            seen = tensorboard_run(logdir)["scalars"]
        time.sleep(0.2)
    assert len(seen["loss/seed:3"]) == 4  # every step is there before the run has finished
    assert not (runs / "sweep-toy" / run_id / "summary.json").exists()
    (toy.marks / "hold").unlink()
    thread.join(120)
    result = box["r"]
    assert result.status == "completed"
    back = tensorboard_run(logdir)
    assert same_curve(back["scalars"]["loss/seed:3"], expected_loss(result))
    score = result.summary["metrics"]["score"]
    assert back["scalars"]["summary/score"][0][1] == pytest.approx(score, rel=1e-6)
    assert back["scalars"]["claims/positive"][0][1] == 1.0
    assert json.loads(_unindent(back["texts"]["config"]))["seed"] == 3
    assert "holds" in back["texts"]["claims"] and "positive" in back["texts"]["claims"]
    assert back["texts"]["status"] == "completed"
    assert back["hparams"]["seed"] == 3 and back["hparams"]["x"] == 1.0


def _unindent(markdown_code):
    return "\n".join(line[4:] for line in markdown_code.splitlines())


@needs("mlflow")
def test_mlflow_gets_params_curves_summary_claims_and_the_summary_file(toy, tmp_path):
    runs = tmp_path / "runs"
    result = run_toy(runs, ["mlflow"], x=2.0)
    ((client, run),) = mlflow_runs(runs / "mlruns", "sweep-toy")
    assert run.info.run_name == result.summary["run_id"] and run.info.status == "FINISHED"
    assert run.data.params["x"] == "2.0" and run.data.params["steps"] == "4"
    assert run.data.tags["fmlab.run_id"] == result.summary["run_id"]
    assert run.data.tags["fmlab.status"] == "completed"
    assert run.data.tags["claim.positive"].startswith("holds:")
    history = client.get_metric_history(run.info.run_id, "loss.seed:0")
    assert same_curve(sorted((m.step, m.value) for m in history), expected_loss(result))
    assert run.data.metrics["summary/score"] == pytest.approx(result.summary["metrics"]["score"])
    assert run.data.metrics["claims/positive"] == 1.0
    local = client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path))
    assert json.loads(Path(local).read_text())["run_id"] == result.summary["run_id"]


@needs("wandb")
def test_wandb_offline_run_holds_config_history_and_summary(toy, tmp_path):
    runs = tmp_path / "runs"
    result = run_toy(runs, ["wandb"], seed=1)
    back = wandb_run(runs / "wandb")
    assert back["name"] == result.summary["run_id"] and back["project"] == "sweep-toy"
    assert f"run_id:{result.summary['run_id']}" in back["tags"] and "smoke" in back["tags"]
    assert back["config"]["seed"] == 1
    curve = [(row["step"], row["loss/seed:1"]) for row in back["history"] if "loss/seed:1" in row]
    assert same_curve(curve, expected_loss(result))
    assert back["summary"]["score"] == pytest.approx(result.summary["metrics"]["score"])
    assert back["summary"]["claims/positive"].startswith("holds:")
    assert back["summary"]["status"] == "completed" and back["exit_code"] == 0


# ---- export of finished runs ---------------------------------------------------------------


@needs("tensorboard")
@needs("mlflow")
def test_export_sends_a_finished_run_as_streaming_would_and_replaces_on_reexport(toy, tmp_path):
    runs = tmp_path / "runs"
    streamed = run_toy(tmp_path / "streamed", ["tensorboard"], seed=2)
    result = run_toy(runs, seed=2)  # no tracker while it ran
    assert result.summary["run_id"] == streamed.summary["run_id"]  # trackers: not in the id
    for _ in range(2):  # a second export replaces the first
        export_run(result.path, TrackerSpec("tensorboard"))
        export_run(result.path, TrackerSpec("mlflow"))
    run_id = result.summary["run_id"]
    exported = tensorboard_run(runs / "tensorboard" / "sweep-toy" / run_id)["scalars"]
    live = tensorboard_run(tmp_path / "streamed" / "tensorboard" / "sweep-toy" / run_id)["scalars"]
    assert exported.keys() == live.keys()
    assert same_curve(exported["loss/seed:2"], live["loss/seed:2"])
    ((client, run),) = mlflow_runs(runs / "mlruns", "sweep-toy")  # the first export: deleted
    assert run.data.tags["fmlab.run_id"] == run_id
    assert len(client.get_metric_history(run.info.run_id, "loss.seed:2")) == 4


@needs("tensorboard")
def test_cli_log_to_keeps_the_run_id_and_export_to_writes_where_asked(toy, tmp_path):
    cli = CliRunner()
    runs = tmp_path / "runs"
    base = ["run", "sweep-toy", "-p", "smoke", "--import", "fmlab_sweep_toy", "--no-report"]
    plain = cli.invoke(app, [*base, "-o", str(tmp_path / "plain"), "--json"])
    logged = cli.invoke(app, [*base, "-o", str(runs), "--log-to", "tensorboard", "--json"])
    assert plain.exit_code == 0 and logged.exit_code == 0, logged.output
    run_id = json.loads(logged.stdout)["run_id"]
    assert json.loads(plain.stdout)["run_id"] == run_id
    assert (runs / "tensorboard" / "sweep-toy" / run_id).is_dir()
    again = cli.invoke(app, [*base, "-o", str(runs), "--log-to", "tensorboard"])
    assert again.exit_code == 0 and "fmlab export" in again.output  # reused: how to send it
    target = tmp_path / "tb"
    out = cli.invoke(app, ["export", str(tmp_path / "plain"), "--to", f"tensorboard={target}"])
    assert out.exit_code == 0, out.output
    assert tensorboard_run(target / "sweep-toy" / run_id)["scalars"]["summary/score"]


def test_export_keeps_the_model_export_usage_and_refuses_mixed_or_unfinished(toy, tmp_path):
    cli = CliRunner()
    one = cli.invoke(app, ["export", str(tmp_path)])
    assert one.exit_code == 2 and "RUN_DIR OUT_DIR" in one.output
    mixed = cli.invoke(app, ["export", str(tmp_path), "--to", "tensorboard", "-w", "x"])
    assert mixed.exit_code == 2 and "--weights" in mixed.output
    runs = tmp_path / "runs"
    run_toy(runs, seed=5)
    broken = run_toy(runs, seed=6).path / "summary.json"
    broken.write_text("{not json")
    unfinished = run_toy(runs, seed=7).path / "summary.json"
    unfinished.unlink()
    sent = cli.invoke(app, ["export", str(runs), "--to", "tensorboard", "--json"])
    assert sent.exit_code == 0, sent.output
    data = json.loads(sent.stdout)
    assert len(data["exported"]) == 1 and data["skipped_unfinished"] == [str(unfinished.parent)]
    assert "summary.json" in sent.stderr and "Traceback" not in sent.output
    bad = cli.invoke(app, ["export", str(tmp_path), "--to", "tensorbord"])
    assert bad.exit_code == 2 and "did you mean 'tensorboard'" in bad.output.lower()
    assert "Traceback" not in bad.output


# ---- sweeps: the trackers travel with the task --------------------------------------------


@needs("tensorboard")
def test_a_sweep_streams_every_run_under_its_directory(toy, tmp_path):
    from fmlab.sweep import run_sweep, sweep_spec

    spec = sweep_spec("sweep-toy", "smoke", grid={"x": [1.0, 2.0]})
    result = run_sweep(spec, out=tmp_path, threads=1, trackers=["tensorboard"])
    assert result.count("completed") == 2
    logdirs = sorted((result.directory / "tensorboard" / "sweep-toy").iterdir())
    assert len(logdirs) == 2
    for d in logdirs:
        assert len(tensorboard_run(d)["scalars"]["loss/seed:0"]) == 4


# ---- bad input and failures ----------------------------------------------------------------


def test_a_missing_library_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    with pytest.raises(UserInputError, match=r"pip install 'fmlab\[mlflow\]'"):
        parse_specs(["mlflow"])
    cli = CliRunner().invoke(app, ["run", "grokking", "-p", "smoke", "--log-to", "mlflow"])
    assert cli.exit_code == 2 and "fmlab[mlflow]" in cli.output and "Traceback" not in cli.output


def test_specs_parse_names_targets_and_typos():
    assert parse_specs(["TensorBoard", "mlflow=sqlite:///x.db"]) == (
        TrackerSpec("tensorboard"),
        TrackerSpec("mlflow", "sqlite:///x.db"),
    )
    with pytest.raises(UserInputError, match="Did you mean 'wandb'"):
        parse_specs(["wanbd"])
    with pytest.raises(UserInputError, match="give a target"):
        parse_specs(["mlflow="])
    assert set(TRACKERS.names()) >= {"tensorboard", "mlflow", "wandb"}


def test_metric_keys_group_tags_under_the_metric_and_match_parquet_floats():
    assert metric_key("acc", {"seed": 0, "variant": "a/b"}) == "acc/seed:0/variant:a_b"
    assert metric_key("acc", {"seed": 0.0, "lr": 0.5, "gone": None}) == "acc/seed:0/lr:0.5"


class Broken:
    def log(self, rows):
        raise RuntimeError("disk on fire")

    def finish(self, summary):
        raise AssertionError("a dropped tracker is not called again")

    def close(self):
        pass


def test_a_tracker_that_fails_is_dropped_with_a_warning_and_the_run_completes(toy, tmp_path):
    tracker_base.register_tracker(
        "broken", module="json", extra="x", default_target=str, help="fails"
    )(lambda run, target: Broken())
    try:
        with pytest.warns(UserWarning, match="tracker broken failed while logging"):
            result = run_toy(tmp_path, ["broken"])
    finally:
        TRACKERS.remove("broken")
    assert result.status == "completed"


@needs("mlflow")
def test_a_failed_run_is_failed_and_a_stopped_one_killed_in_the_tracker(toy, tmp_path):
    failed = run_toy(tmp_path / "a", ["mlflow"], fail="true")
    assert failed.status == "failed"
    ((_, run),) = mlflow_runs(tmp_path / "a" / "mlruns", "sweep-toy")
    assert run.info.status == "FAILED" and run.data.tags["fmlab.status"] == "failed"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C mid-run: no summary
        run_toy(tmp_path / "b", ["mlflow"], interrupt="true")
    ((_, run),) = mlflow_runs(tmp_path / "b" / "mlruns", "sweep-toy")
    assert run.info.status == "KILLED" and "fmlab.status" not in run.data.tags
