"""Fast studies for the sweep tests, registered by importing this module (a plugin, as a
user's own study package would be: ``fmlab sweep sweep-toy --import fmlab_sweep_toy``).

Every execution appends ``start``/``end`` lines to ``$FMLAB_TOY_MARKS/marks.log`` (one
``O_APPEND`` write per line), so tests count how often each run id was executed — in the
driver, a spawned worker, a Ray worker or a submitit job alike. While ``$FMLAB_TOY_MARKS/hold``
exists a started run waits before its last step, so a test decides when it ends (not a
sleep that a loaded machine outlasts).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import torch
from pydantic import Field

from fmlab.claims import Claim
from fmlab.config import Config
from fmlab.store import Run
from fmlab.study import STUDIES, study

NAMES = ("sweep-toy", "sweep-toy-batch")


class ToyConfig(Config):
    x: float = 1.0
    seed: int = 0
    steps: int = Field(4, ge=1)
    sleep: float = Field(0.0, ge=0, description="seconds per run, spread over the steps")
    fail: bool = False
    die: bool = Field(False, description="the worker process exits mid-run (a crash)")
    interrupt: bool = Field(False, description="SIGINT to this process mid-run (Ctrl-C)")
    blob: int = Field(0, ge=0, description="bytes of an artifact written mid-run (a full disk)")


PRESETS = {"smoke": ToyConfig(), "quick": ToyConfig(steps=8), "paper": ToyConfig(steps=16)}
CLAIMS = (Claim("positive", "toy", "the score is positive", "score", ">", 0.0),)


def mark(kind: str, run: Run, extra: str = "") -> None:
    folder = os.environ.get("FMLAB_TOY_MARKS")
    if not folder:
        return
    line = f"{kind} {run.run_id} {os.getpid()} {extra}".rstrip() + "\n"
    fd = os.open(Path(folder) / "marks.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _wait_while_held(limit: float = 300.0) -> None:
    folder = os.environ.get("FMLAB_TOY_MARKS")
    deadline = time.monotonic() + limit
    while folder and (Path(folder) / "hold").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def body(cfg: ToyConfig, run: Run) -> dict[str, float]:
    """A seeded noisy curve: the score depends on x and the seed, bit for bit."""
    mark("start", run)
    noise = torch.randn(cfg.steps, generator=torch.Generator().manual_seed(cfg.seed))
    steps = ((step, {}) for step in range(cfg.steps))  # as a training loop yields
    for step, _ in run.track(steps, cfg.steps, f"toy x={cfg.x}"):
        run.log(step, {"loss": cfg.x / (step + 1) + 0.01 * float(noise[step])}, seed=cfg.seed)
        if step == cfg.steps // 2:
            run.flush()  # a partial metrics.parquet exists while the run is unfinished
            run.save_json("halfway", {"step": step})
            if cfg.blob:
                from fmlab.store import atomic_write_bytes

                atomic_write_bytes(run.artifacts / "blob.bin", os.urandom(cfg.blob))
            if cfg.die:
                os._exit(3)
            if cfg.interrupt:
                os.kill(os.getpid(), signal.SIGINT)
        time.sleep(cfg.sleep / cfg.steps)
    _wait_while_held()
    if cfg.fail:
        raise RuntimeError(f"toy failure at x={cfg.x}")
    mark("end", run)
    return {"score": 10 * cfg.x + float(noise.sum()), "x_seen": cfg.x}


def run_batch(cfgs, runs):
    """Stands in for a batched trainer: records the group, then runs each member."""
    for run in runs:
        mark("batch", run, str(len(runs)))
    out = []
    for cfg, run in zip(cfgs, runs, strict=True):
        try:
            out.append(body(cfg, run))
        except Exception as e:
            out.append(e)
    return out


def register() -> None:
    for name, batch in zip(NAMES, (None, run_batch), strict=True):
        if name not in STUDIES:
            study(
                name,
                config=ToyConfig,
                presets=PRESETS,
                claims=CLAIMS,
                title=f"toy study for sweep tests ({name})",
                citation="-",
                run_batch=batch,
                ensemble_keys=("x", "seed") if batch else (),
            )(body)


def unregister() -> None:
    for name in NAMES:
        if name in STUDIES:
            STUDIES.remove(name)


register()
