"""``--device cuda`` asks the cluster for a GPU per task: Ray reserves ``num_gpus=1``,
SLURM jobs get ``gpus_per_node=1`` unless ``--slurm-gpus`` says otherwise (checked with
submitit's debug cluster and a stand-in for Ray: no GPU or cluster is needed here)."""

from __future__ import annotations

import sys
import types

import pytest

from fmlab.sweep.executors import make_executor


@pytest.mark.parametrize(("device", "gpus"), [("cuda", 1), ("cuda:1", 1), ("cpu", 0), ("auto", 0)])
def test_slurm_jobs_request_a_gpu_with_device_cuda(tmp_path, device, gpus):
    pytest.importorskip("submitit")
    ex = make_executor("slurm", directory=tmp_path, device=device, cluster="debug")
    assert ex._ex._executor.parameters.get("gpus_per_node", 0) == gpus
    explicit = make_executor("slurm", directory=tmp_path, device=device, cluster="debug", gpus=2)
    assert explicit._ex._executor.parameters["gpus_per_node"] == 2


def test_ray_tasks_reserve_a_gpu_with_device_cuda(monkeypatch):
    seen = {}

    def remote(**options):
        seen.update(options)
        return lambda fn: types.SimpleNamespace(remote=lambda task: ("ref", task))

    fake = types.SimpleNamespace(
        is_initialized=lambda: True,
        remote=remote,
        wait=lambda refs, **kw: (list(refs), []),
        get=lambda ref: "outcome",
        cancel=lambda *a, **k: None,
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    for device, gpus in (("cuda", 1), ("cpu", 0)):
        ex = make_executor("ray", device=device)
        assert list(ex.run(["task"])) == ["outcome"] and seen["num_gpus"] == gpus
