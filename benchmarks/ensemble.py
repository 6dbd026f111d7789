"""Training 16 grokking models (16 seeds) as one batched ensemble vs a loop of 16 runs.

Same model (the grokking quick preset: 1 layer, d_model 128, 4 heads, d_mlp 512, no
LayerNorm, p = 59, full batch of 1,392 pairs), same number of AdamW steps, in the same
process. Target: speed-up ≥ 4×.

    python benchmarks/ensemble.py [--members 16] [--steps 30] [--repeats 3] [--threads N]
                                  [--d-model 128] [--batch-size B]

``--batch-size`` trains on minibatches instead (the launch-bound regime where batching
members pays most); every member sees the same batches.

Also printed: the matmul FLOPs of one member's training step (``torch.utils.flop_counter``),
the rate both contenders reach, and a float32 matmul peak measured in the same process
(1024² GEMMs). ``peak / loop rate`` bounds the speed-up any batching could give: at full
batch the loop already runs its large matmuls near that peak.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _common import interleaved, ratio, report
from torch.utils.flop_counter import FlopCounterMode

from fmlab.models import GPT, GPTConfig
from fmlab.tasks.modular import ModularConfig, make_data
from fmlab.train import TrainConfig, iterate_batches, train
from fmlab.train.ensemble import Ensemble, train_ensemble
from fmlab.train.memory import keep_freed_memory

DATA = make_data(ModularConfig(p=59, train_frac=0.4))
MODEL = GPTConfig(n_layers=1, d_model=128, n_heads=4, d_mlp=512, norm="none")
BATCH: int | None = None  # None: the full batch of the quick preset


def build(seed: int) -> GPT:
    return GPT(
        MODEL, vocab_size=DATA.vocab_size, seq_len=3, generator=torch.Generator().manual_seed(seed)
    )


def loss_one(model, batch):
    x, y = batch
    return F.cross_entropy(model(x, last_only=True)[:, -1], y)


def loss_many(ens, batch):
    x, y = batch  # one full batch shared by every member
    logits = ens(x, last_only=True)[:, :, -1]  # (K, N, V)
    return F.cross_entropy(
        logits.transpose(1, 2), y.expand(len(logits), -1), reduction="none"
    ).mean(1)


def loop(members: int, cfg: TrainConfig):
    def go():
        for seed in range(members):
            model = build(seed)
            batches = iterate_batches((DATA.train_x, DATA.train_y), BATCH, torch.Generator())
            for _ in train(model, loss_one, batches, cfg):
                pass

    return go


def batched(members: int, cfg: TrainConfig):
    def go():
        ens = Ensemble([build(seed) for seed in range(members)])
        batches = iterate_batches((DATA.train_x, DATA.train_y), BATCH, torch.Generator())
        for _ in train_ensemble(ens, loss_many, batches, [cfg] * members):
            pass

    return go


def step_flops() -> float:
    """Matmul FLOPs of one member's forward and backward pass on one batch."""
    n = BATCH or len(DATA.train_x)
    with FlopCounterMode(display=False) as counter:
        loss_one(build(0), (DATA.train_x[:n], DATA.train_y[:n])).backward()
    return float(counter.get_total_flops())


def matmul_peak(n: int = 1024, seconds: float = 1.0) -> float:
    """FLOP/s of repeated n x n float32 GEMMs with the current thread setting."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        calls += 1
    return 2 * n**3 * calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--d-model", type=int, default=128, help="128 = the quick preset")
    parser.add_argument("--batch-size", type=int, default=None, help="default: full batch")
    args = parser.parse_args()
    global MODEL, BATCH
    BATCH = args.batch_size
    MODEL = MODEL.model_copy(update={"d_model": args.d_model, "d_mlp": 4 * args.d_model})
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as fmlab.runner.numerics() does for every run
    keep_freed_memory()
    cfg = TrainConfig(
        steps=args.steps, lr=3e-3, weight_decay=1.0, betas=(0.9, 0.98), eval_every=args.steps
    )
    fns = {
        f"loop of {args.members} runs": loop(args.members, cfg),
        f"ensemble of {args.members}": batched(args.members, cfg),
    }
    batched(2, cfg.model_copy(update={"steps": 2}))()  # warm-up (vmap tracing)
    times = interleaved(fns, args.repeats)
    r = ratio(times, f"loop of {args.members} runs", f"ensemble of {args.members}")
    work = step_flops() * args.members * args.steps
    rate = {k: work / statistics.median(v) / 1e9 for k, v in times.items()}
    peak = matmul_peak() / 1e9
    report(
        "ensemble",
        times,
        {
            "members": args.members,
            "d_model": args.d_model,
            "batch_size": args.batch_size or len(DATA.train_x),
            "params_per_model": build(0).n_params(),
            "steps": args.steps,
            "threads": torch.get_num_threads(),
            "speedup": round(r, 3),
            "target": ">= 4",
            "gflop_per_member_step": round(work / args.members / args.steps / 1e9, 3),
            "gflop_per_s": {k: round(v, 1) for k, v in rate.items()},
            "matmul_peak_gflop_per_s": round(peak, 1),
            "ceiling_peak_over_loop": round(
                peak * 1e9 / (work / statistics.median(times[f"loop of {args.members} runs"])), 2
            ),
        },
    )


if __name__ == "__main__":
    main()
