"""Promise (issue 15): a killed run resumes from its checkpoints and ends with exactly the
metrics of a run that was never interrupted — every training study, SIGKILLed at seeded
random moments, and stopped by SIGTERM (what SLURM sends before a time limit).

SIGKILL is tried on every study: whether a study resumes exactly depends on its own loops
and what they checkpoint. SIGTERM only adds the stop request, which the shared loops
(``fmlab.train.train``, ``train_ensemble``, the pool's workers) act on at their next item,
whatever the study; it is tried on one study per way of training — a batched ensemble
(grokking), jobs in worker processes (recall), several loops in sequence (unlearning) —
which keeps the suite within its budget as studies are added."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from tests.reliability.helpers import cli

# a little longer than smoke, so that a kill lands in training; same for every run
# (adaptation has its own SIGTERM test in tests/studies/test_adaptation.py)
LONGER = {
    "alignment": ["align.steps=40", "det.steps=40"],
    "emergence": ["train.steps=200"],
    "grokking": ["train.steps=300"],
    "recall": ["train.steps=40"],
    "representations": ["pretrain.steps=80", "finetune.steps=40"],
    "induction-heads": ["train.steps=80"],
    "icl": ["train.steps=120"],
    "instructions": ["train.steps=300"],
    "intrinsic-dim": ["finetune.steps=40"],
    "moe": ["train.steps=60"],
    "scaling": [],
    "scratchpad": ["train.steps=300"],
    "unlearning": ["train.steps=300"],
    "watermark": ["train.steps=400"],
}


def _args(study: str, out: Path, *extra: str) -> list[str]:
    sets = [a for s in LONGER[study] for a in ("--set", s)]
    return cli("run", study, "-p", "smoke", *sets, "--threads", "1", "--no-report", "--json",
               "--out", out, *extra)  # fmt: skip


def _result(out: Path, study: str) -> tuple[pd.DataFrame, dict]:
    (run,) = (out / study).iterdir()
    summary = json.loads((run / "summary.json").read_text())
    return pd.read_parquet(run / "metrics.parquet"), summary


def _interrupt(study: str, out: Path, how: int, seed: int) -> bool:
    """Start the run, wait for its first checkpoint, signal it after a seeded delay;
    whether it was stopped before finishing."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_args(study, out, "--checkpoint-every", "0"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 60
    while not list(out.glob(f"{study}/*/checkpoints/*.json")):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()
        time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0.0, 0.6))
    proc.send_signal(how)
    code = proc.wait(timeout=120)
    return not list(out.glob(f"{study}/*/summary.json")) and code != 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of each study, made once for both signals."""
    made: dict[str, Path] = {}

    def get(study: str) -> Path:
        if study not in made:
            out = tmp_path_factory.mktemp(f"ref-{study}")
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            done = subprocess.run(_args(study, out, "--no-checkpoint"), env=env,
                                  capture_output=True)  # fmt: skip
            assert done.returncode == 0, done.stderr.decode()
            made[study] = out
        return made[study]

    return get


SIGTERM_STUDIES = ("grokking", "recall", "unlearning")
CASES = [(s, signal.SIGKILL) for s in sorted(LONGER)] + [
    (s, signal.SIGTERM) for s in SIGTERM_STUDIES
]


@pytest.mark.slow
@pytest.mark.parametrize(("study", "how"), CASES, ids=[f"{h.name}-{s}" for s, h in CASES])
def test_a_killed_run_resumes_to_the_same_metrics(tmp_path, study, how, reference):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    stopped = False
    for seed in range(3):  # the run may have finished before the signal: try earlier
        out = tmp_path / f"cut{seed}"
        stopped = _interrupt(study, out, how, seed)
        if stopped:
            break
    assert stopped, "the run always finished before it could be interrupted"
    rerun = subprocess.run(_args(study, out, "--checkpoint-every", "0"), env=env,
                           capture_output=True)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr.decode()
    (a_rows, a), (b_rows, b) = _result(reference(study), study), _result(out, study)
    pd.testing.assert_frame_equal(a_rows, b_rows)
    assert a["metrics"] == b["metrics"]
    assert not list(out.glob(f"{study}/*/checkpoints"))  # finished: checkpoints removed
