import operator
import os

import torch

from fmlab.store import Run
from fmlab.train.pool import CurveLog, pool_map

# workers import the function by name: it must live in an importable module, not here


def test_results_come_back_in_job_order_from_one_thread_workers():
    jobs = [(i,) for i in range(6)]
    out = pool_map(operator.neg, jobs, workers=2, cost=lambda job: job[0])  # last job first
    assert out == [0, -1, -2, -3, -4, -5]
    assert pool_map(operator.neg, jobs, workers=1) == out
    assert pool_map(torch.get_num_threads, [()] * 4, workers=2) == [1] * 4
    assert os.getpid() not in pool_map(os.getpid, [()] * 4, workers=2)


def test_curve_log_replays_into_a_run_as_if_logged_there(tmp_path):
    log = CurveLog()
    assert list(log.track(iter([(1, {}), (2, {})]), 2, "x")) == [(1, {}), (2, {})]
    log.log(10, {"loss": 1.5}, seed=0, mixer="ssm")
    log.log(20, {"loss": 0.5, "acc": 1}, seed=0, mixer="ssm")
    direct = Run.start(tmp_path, "s", "direct", {})
    direct.log(10, {"loss": 1.5}, seed=0, mixer="ssm")
    direct.log(20, {"loss": 0.5, "acc": 1}, seed=0, mixer="ssm")
    replayed = Run.start(tmp_path, "s", "replayed", {})
    log.replay_into(replayed)
    assert replayed.metrics_frame().equals(direct.metrics_frame())
