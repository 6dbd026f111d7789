"""The driver against the ledger: resume runs only what is missing, failures are recorded
and retried on request, changed specs are refused, two drivers never run a config twice,
ensemble groups are formed from ``ensemble_keys``, Ctrl-C leaves a clean ledger."""

import threading

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from fmlab.lease import current_lease
from fmlab.store import read_metrics, read_summary
from fmlab.sweep import SweepChanged, SweepInterrupted, plan, run_sweep, sweep_spec
from fmlab.sweep.driver import _record, group_points
from fmlab.sweep.tables import sweep_status, sweep_table
from fmlab.sweep.worker import RunSpec, Task, run_task


def toy_spec(**kwargs):
    kwargs.setdefault("grid", {"x": [1.0, 2.0]})
    kwargs.setdefault("seeds", 3)
    return sweep_spec("sweep-toy", "smoke", **kwargs)


def expected_score(x, seed, steps=4):
    return 10 * x + float(torch.randn(steps, generator=torch.Generator().manual_seed(seed)).sum())


def test_a_sweep_runs_each_config_once_and_resumes_with_nothing_to_do(toy, tmp_path):
    first = run_sweep(toy_spec(), out=tmp_path, threads=1)
    assert first.total == 6 and first.ran == 6 and first.count("completed") == 6
    assert first.directory == tmp_path / "sweeps" / "sweep-toy-smoke"
    again = run_sweep(toy_spec(), out=tmp_path, threads=1)
    assert again.ran == 0 and again.already_done == 6
    assert set(toy.count("start").values()) == {1} and len(toy.count("start")) == 6
    status = sweep_status(first.directory)
    assert status.done == 6 and status.counts["pending"] == 0


def test_the_table_is_mean_and_t_interval_over_seeds(toy, tmp_path):
    result = run_sweep(toy_spec(), out=tmp_path, threads=1)
    table = sweep_table(result.directory)
    assert list(table["x"]) == [1.0, 2.0] and set(table["metric"]) == {"score"}
    for row in table.itertuples():
        scores = [expected_score(row.x, s) for s in range(3)]
        low, high = sps.t.interval(0.95, 2, loc=np.mean(scores), scale=sps.sem(scores))
        assert row.mean == pytest.approx(np.mean(scores), rel=1e-6)
        assert (row.low, row.high) == pytest.approx((low, high), rel=1e-6)
        assert row.n == 3 and row.runs == 3 and row.diverged == 0


def test_a_failing_run_is_recorded_and_retried_only_when_asked(toy, tmp_path):
    spec = toy_spec(zip={"x": [1.0, 2.0], "fail": [False, True]}, grid={})
    result = run_sweep(spec, out=tmp_path, threads=1)
    assert result.count("completed") == 3 and result.count("failed") == 3
    failed = [o for o in result.outcomes if o.status == "failed"]
    assert "RuntimeError: toy failure at x=2.0" in failed[0].error
    summary = read_summary(result.directory / "sweep-toy" / failed[0].run_id)
    assert summary["status"] == "failed" and "Traceback" in summary["error"]
    assert run_sweep(spec, out=tmp_path, threads=1).ran == 0  # not retried by default
    retried = run_sweep(spec, out=tmp_path, threads=1, retry_failed=True)
    assert retried.ran == 3 and retried.count("failed") == 3
    starts = toy.count("start")
    assert sorted(starts.values()) == [1, 1, 1, 2, 2, 2]
    assert all(starts[o.run_id] == 2 for o in failed)


def test_a_changed_spec_is_refused_unless_allowed(toy, tmp_path):
    run_sweep(toy_spec(), out=tmp_path, threads=1)
    bigger = toy_spec(grid={"x": [1.0, 2.0, 3.0]})
    with pytest.raises(SweepChanged) as info:
        run_sweep(bigger, out=tmp_path, threads=1)
    message = str(info.value)
    assert "grid.x: [1.0, 2.0] → [1.0, 2.0, 3.0]" in message and "--allow-changed" in message
    assert "runs: 3 new, 0 no longer" in message
    grown = run_sweep(bigger, out=tmp_path, threads=1, allow_changed=True)
    assert grown.ran == 3 and grown.already_done == 6 and grown.total == 9
    assert run_sweep(bigger, out=tmp_path, threads=1).ran == 0  # the new spec is the saved one


def test_two_drivers_at_once_never_run_a_config_twice(toy, tmp_path):
    spec = toy_spec(grid={"x": [1.0, 2.0, 3.0, 4.0]}, overrides=["sleep=0.02"])
    results, errors = [], []
    both_planned = threading.Barrier(2, timeout=30)  # both see all 12 runs pending

    def drive():
        try:
            start = lambda total, done: both_planned.wait()  # noqa: E731
            results.append(run_sweep(spec, out=tmp_path, threads=1, on_start=start))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    drivers = [threading.Thread(target=drive) for _ in range(2)]
    for d in drivers:
        d.start()
    for d in drivers:
        d.join()
    assert not errors
    ran = [{o.run_id for o in r.outcomes if o.status == "completed"} for r in results]
    assert not ran[0] & ran[1] and len(ran[0] | ran[1]) == 12
    assert set(toy.count("start").values()) == {1} and len(toy.count("start")) == 12


def test_ensemble_groups_differ_only_in_ensemble_keys(toy, tmp_path):
    spec = sweep_spec("sweep-toy-batch", "smoke", grid={"x": [1.0, 2.0], "steps": [4, 6]}, seeds=2)
    p = plan(spec)
    groups = group_points(p, p.points, "auto")
    assert sorted(len(g) for g in groups) == [4, 4]  # x and seed vary inside, steps splits
    assert all(len({pt.config.steps for pt in g}) == 1 for g in groups)
    assert sorted(len(g) for g in group_points(p, p.points, "auto", size=3)) == [1, 1, 3, 3]
    assert all(len(g) == 1 for g in group_points(p, p.points, "off"))
    result = run_sweep(spec, out=tmp_path, threads=1)
    assert result.count("completed") == 8
    assert set(toy.count("batch").values()) == {1}
    assert {parts[3] for parts in toy.lines() if parts[0] == "batch"} == {"4"}


def test_ensemble_off_runs_one_by_one(toy, tmp_path):
    spec = sweep_spec("sweep-toy-batch", "smoke", grid={"x": [1.0, 2.0]}, seeds=2)
    result = run_sweep(spec, out=tmp_path, threads=1, ensemble="off")
    assert result.count("completed") == 4 and not toy.count("batch")


def test_ctrl_c_keeps_finished_runs_and_releases_the_claim(toy, tmp_path):
    spec = toy_spec(zip={"x": [1.0, 2.0], "interrupt": [False, True]}, grid={}, seeds=2)
    with pytest.raises(SweepInterrupted) as info:
        run_sweep(spec, out=tmp_path, threads=1)
    done = info.value.result
    assert done.interrupted and done.count("completed") == 2  # x=1 ran first
    run_dirs = sorted((done.directory / "sweep-toy").iterdir())
    summaries = {d.name: read_summary(d) for d in run_dirs}
    assert sum(s is not None for s in summaries.values()) == 2
    unfinished = [d for d in run_dirs if summaries[d.name] is None]
    assert len(unfinished) == 1 and not current_lease(unfinished[0]).live()
    status = sweep_status(done.directory)
    assert status.counts["running"] == 0 and status.counts["pending"] == 2


def test_returned_files_are_written_into_the_ledger(toy, tmp_path):
    spec = toy_spec()
    direct = run_sweep(spec, directory=tmp_path / "direct", threads=1)
    returned = run_sweep(spec, directory=tmp_path / "returned", threads=1, return_files=True)
    assert returned.count("completed") == 6
    for o in direct.outcomes:
        a = direct.directory / "sweep-toy" / o.run_id
        b = returned.directory / "sweep-toy" / o.run_id
        pd.testing.assert_frame_equal(read_metrics(a), read_metrics(b))
        assert read_summary(a)["metrics"] == read_summary(b)["metrics"]
        assert (b / "artifacts" / "halfway.json").exists() and not list(b.glob(".lease*"))


def test_a_worker_that_cannot_see_the_sweep_returns_its_files(toy, tmp_path):
    spec = toy_spec(grid={}, seeds=1)
    p = plan(spec)
    run_sweep(spec, directory=tmp_path / "s", threads=1, ensemble="off")  # creates sweep.json
    point = p.points[0]
    (tmp_path / "s" / "sweep-toy" / point.run_id / "summary.json").unlink()
    task = Task(
        "sweep-toy",
        "smoke",
        str(tmp_path / "s"),
        "another-sweep-id",
        (RunSpec(point.run_id, point.config.model_dump(mode="json"), None),),
    )
    outcome = run_task(task)  # sweep_id differs: as if on a node without the filesystem
    assert outcome.runs[0].files and "summary.json" in outcome.runs[0].files
    from fmlab.lease import LeaseKeeper

    with LeaseKeeper() as keeper:
        recorded = _record(outcome, keeper)
    assert recorded[0].status == "completed" and recorded[0].files is None
    assert read_summary(tmp_path / "s" / "sweep-toy" / point.run_id)["status"] == "completed"
    with LeaseKeeper() as keeper:  # the same files again: the ledger changed, so refused
        assert _record(outcome, keeper)[0].status == "changed"
