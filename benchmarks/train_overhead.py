"""fmlab's training loop vs a bare PyTorch loop on the same model and batches.

Both train the grokking quick model (1 layer, d_model 128, full batch of 1,392 pairs
of p = 59) for the same number of steps with the same AdamW; the fmlab loop adds its
schedule, NaN check and generator protocol. Target: ratio ≤ 1.10.

    python benchmarks/train_overhead.py [--steps 100] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _common import emit, interleaved, ratio, report, row, speedup

from fmlab.models import GPT, GPTConfig
from fmlab.tasks.modular import ModularConfig, make_data
from fmlab.train import TrainConfig, iterate_batches, train


def setup():
    data = make_data(ModularConfig(p=59, train_frac=0.4))
    cfg = GPTConfig(n_layers=1, d_model=128, n_heads=4, d_mlp=512, norm="none")
    model = GPT(
        cfg, vocab_size=data.vocab_size, seq_len=3, generator=torch.Generator().manual_seed(0)
    )
    return model, (data.train_x, data.train_y)


def loss_fn(model, batch):
    x, y = batch
    return F.cross_entropy(model(x, last_only=True)[:, -1], y)


def fmlab_loop(steps: int):
    cfg = TrainConfig(steps=steps, lr=3e-3, weight_decay=1.0, betas=(0.9, 0.98), eval_every=10)

    def go():
        model, batch = setup()
        for _ in train(model, loss_fn, iterate_batches(batch, None, torch.Generator()), cfg):
            pass

    return go


def bare_loop(steps: int):
    def go():
        model, batch = setup()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.98), weight_decay=1.0)
        for _ in range(steps):
            loss = loss_fn(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return go


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    fns = {"bare PyTorch loop": bare_loop(args.steps), "fmlab.train loop": fmlab_loop(args.steps)}
    fns["bare PyTorch loop"]()  # warm-up
    times = interleaved(fns, args.repeats)
    r = ratio(times, "fmlab.train loop", "bare PyTorch loop")
    report(
        "train_overhead",
        times,
        {
            "steps": args.steps,
            "threads": torch.get_num_threads(),
            "ratio_fmlab_over_bare": round(r, 4),
            "target": "<= 1.10",
        },
    )
    # speed of fmlab's loop relative to the bare loop: >= 1/1.10 meets the target
    emit("train_overhead", [row("fmlab.train loop / bare PyTorch loop (speed)",
                               speedup(times, "bare PyTorch loop", "fmlab.train loop"),
                               ">= 0.91")])  # fmt: skip


if __name__ == "__main__":
    main()
