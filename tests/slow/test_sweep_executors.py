"""The same sweep under every executor gives the same ledger: the same run ids, the same
metrics.parquet contents and summary metrics (one torch thread everywhere, since the thread
count can change floating-point reduction order). Ray runs on a real local cluster started
here; SLURM runs through submitit's local cluster (jobs as subprocesses)."""

from __future__ import annotations

import pandas as pd
import pytest

from fmlab.store import read_metrics, read_summary
from fmlab.sweep import run_sweep, sweep_spec

SPEC = sweep_spec(
    "grokking",
    "smoke",
    grid={"model.d_model": [16, 32]},
    seeds=2,
    overrides=["train.steps=30", "compare_grokfast=null"],
)


def ledger(directory) -> dict[str, tuple[pd.DataFrame, dict]]:
    runs = sorted((directory / "grokking").iterdir())
    return {r.name: (read_metrics(r), read_summary(r)["metrics"]) for r in runs}


def assert_same_ledger(a, b) -> None:
    assert a.keys() == b.keys() and len(a) == 4
    for run_id in a:
        pd.testing.assert_frame_equal(a[run_id][0], b[run_id][0])
        assert a[run_id][1] == b[run_id][1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("serial")
    result = run_sweep(SPEC, directory=directory, threads=1)
    assert result.count("completed") == 4
    return ledger(directory)


@pytest.mark.slow
def test_local_pool_gives_the_serial_ledger(reference, tmp_path):
    result = run_sweep(SPEC, directory=tmp_path, executor="local", jobs=2, threads=1)
    assert result.count("completed") == 4
    assert_same_ledger(reference, ledger(tmp_path))


@pytest.mark.slow
def test_ray_cluster_gives_the_serial_ledger_shared_or_returned(reference, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        shared = run_sweep(SPEC, directory=tmp_path / "shared", executor="ray", threads=1)
        returned = run_sweep(
            SPEC, directory=tmp_path / "returned", executor="ray", threads=1, return_files=True
        )
    finally:
        ray.shutdown()
    assert shared.count("completed") == returned.count("completed") == 4
    assert_same_ledger(reference, ledger(tmp_path / "shared"))
    assert_same_ledger(reference, ledger(tmp_path / "returned"))


@pytest.mark.slow
def test_submitit_local_cluster_gives_the_serial_ledger(reference, tmp_path):
    pytest.importorskip("submitit")
    result = run_sweep(
        SPEC,
        directory=tmp_path,
        executor="slurm",
        jobs=2,
        threads=1,
        executor_options={"cluster": "local", "time_min": 10, "poll_s": 0.2},
    )
    assert result.count("completed") == 4, result.outcomes
    assert_same_ledger(reference, ledger(tmp_path))
    assert list((tmp_path / ".submitit").glob("*_result.pkl"))  # it really went via submitit
