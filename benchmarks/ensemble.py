"""K grokking models trained as one batched ensemble, against a loop of K runs and against
the best hand-written batching.

Contenders, interleaved in the same rounds (A, B, C, D, A, B, C, D …), one thread:

* ``loop``    — K separate runs of ``fmlab.train.train`` (one model each);
* ``fmlab``   — ``fmlab.train.ensemble`` (``Ensemble`` + ``train_ensemble``), as the grokking
  study calls it;
* ``hand``    — the same K models written by hand as stacked tensors: every projection
  one ``torch.baddbmm``, attention by SDPA on (K·B, H, T, d_head), ``torch.optim.AdamW``
  (foreach) over the stacked parameters — what a researcher would write to batch seeds;
* ``peak``    — a fixed number of 1024² float32 GEMMs: the rate the machine gives this
  thread in that round.

Model: the grokking quick preset (1 layer, 4 heads, d_mlp = 4·d_model, no LayerNorm,
p = 59, 40% of pairs), AdamW, same batches for every member. Configs: the full batch of
1,392 pairs at d_model 128 (compute-bound) and minibatches of 64, 32 and 8 at d_model
64 and 32 (launch-bound, where batching pays most). Targets: fmlab ≥ 0.9× of ``hand``.

    python benchmarks/ensemble.py [--members 16] [--steps 30] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _common import emit, interleaved, row, speedup
from torch.func import stack_module_state
from torch.utils.flop_counter import FlopCounterMode

from fmlab.models import GPT, GPTConfig
from fmlab.tasks.modular import ModularConfig, make_data
from fmlab.train import TrainConfig, iterate_batches, train
from fmlab.train.ensemble import Ensemble, train_ensemble

DATA = make_data(ModularConfig(p=59, train_frac=0.4))
HEADS = 4
CONFIGS = [  # (d_model, minibatch or None for the full batch)
    (128, None),
    (64, 64),
    (32, 32),
    (32, 8),
]


def model_cfg(d: int) -> GPTConfig:
    return GPTConfig(n_layers=1, d_model=d, n_heads=HEADS, d_mlp=4 * d, norm="none")


def build(d: int, seed: int) -> GPT:
    return GPT(
        model_cfg(d),
        vocab_size=DATA.vocab_size,
        seq_len=3,
        generator=torch.Generator().manual_seed(seed),
    )


def loss_one(model, batch):
    x, y = batch
    return F.cross_entropy(model(x, last_only=True)[:, -1], y)


def loss_many(ens, batch):
    x, y = batch  # one batch shared by every member
    logits = ens(x, last_only=True)[:, :, -1]  # (K, N, V)
    return F.cross_entropy(
        logits.transpose(1, 2), y.expand(len(logits), -1), reduction="none"
    ).mean(1)


def hand_forward(P: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The 1-layer model on stacked weights (K, …), written with batched matmuls; logits
    of the last position (K, B, V). Checked against fmlab's GPT at start-up."""
    K, D = P["W_E"].shape[0], P["W_E"].shape[2]
    B, T = x.shape
    dh = D // HEADS

    def lin(h, name, bias=True):
        w = P[f"blocks.0.{name}.weight"]
        return torch.baddbmm(P[f"blocks.0.{name}.bias"][:, None], h, w) if bias else h @ w

    h = P["W_E"][:, x] + P["W_pos"][:, None, :T]  # (K, B, T, D)
    flat, last = h.reshape(K, B * T, D), h[:, :, -1]
    q = lin(last, "mixer.w_q").view(K * B, 1, HEADS, dh).transpose(1, 2)
    k = lin(flat, "mixer.w_k", bias=False).view(K * B, T, HEADS, dh).transpose(1, 2)
    v = lin(flat, "mixer.w_v").view(K * B, T, HEADS, dh).transpose(1, 2)
    z = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(K, B, D)
    r = last + lin(z, "mixer.w_o")
    r = r + lin(torch.relu(lin(r, "mlp.w_in")), "mlp.w_out")
    return torch.bmm(r, P["W_U"])


def contenders(d: int, batch: int | None, members: int, steps: int) -> dict:
    cfg = TrainConfig(steps=steps, lr=3e-3, weight_decay=1.0, betas=(0.9, 0.98), eval_every=steps)
    xy = (DATA.train_x, DATA.train_y)

    def loop():
        for seed in range(members):
            model = build(d, seed)
            for _ in train(model, loss_one, iterate_batches(xy, batch, torch.Generator()), cfg):
                pass

    def fmlab():
        ens = Ensemble([build(d, seed) for seed in range(members)])
        batches = iterate_batches(xy, batch, torch.Generator())
        for _ in train_ensemble(ens, loss_many, batches, [cfg] * members):
            pass

    def hand():
        params, _ = stack_module_state([build(d, seed) for seed in range(members)])
        P = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
        opt = torch.optim.AdamW(
            P.values(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas, foreach=True
        )
        batches = iterate_batches(xy, batch, torch.Generator())
        for _ in range(steps):
            x, y = next(batches)
            logits = hand_forward(P, x).transpose(1, 2)
            losses = F.cross_entropy(logits, y.expand(members, -1), reduction="none")
            opt.zero_grad(set_to_none=True)
            losses.mean(1).sum().backward()
            opt.step()

    return {"loop": loop, "fmlab": fmlab, "hand": hand}


def check_hand(d: int) -> float:
    """Largest difference between hand_forward and fmlab's GPT on a few inputs."""
    models = [build(d, seed) for seed in range(3)]
    params, _ = stack_module_state(models)
    x = DATA.train_x[:8]
    with torch.no_grad():
        want = torch.stack([m(x, last_only=True)[:, -1] for m in models])
        return float((hand_forward(params, x) - want).abs().max())


GEMM_N, GEMM_CALLS = 1024, 8
A, B = torch.randn(GEMM_N, GEMM_N), torch.randn(GEMM_N, GEMM_N)


def gemm() -> None:
    for _ in range(GEMM_CALLS):
        A @ B


def step_flops(d: int, batch: int | None) -> float:
    """Matmul FLOPs of one member's forward and backward pass on one batch."""
    n = batch or len(DATA.train_x)
    with FlopCounterMode(display=False) as counter:
        loss_one(build(d, 0), (DATA.train_x[:n], DATA.train_y[:n])).backward()
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the launch-bound configs only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as fmlab.runner.numerics() does for every run
    rows, detail = [], []
    for d, batch in CONFIGS[1:] if args.quick else CONFIGS:
        err = check_hand(d)
        assert err < 1e-4, f"the hand-written model disagrees with fmlab's GPT by {err}"
        fns = contenders(d, batch, args.members, args.steps)
        times = interleaved({**fns, "peak": gemm}, args.rounds, warmup=True)
        name = f"d_model {d}, " + (f"minibatch {batch}" if batch else "full batch")
        rows.append(row(f"ensemble/loop ({name})", speedup(times, "loop", "fmlab")))
        rows.append(row(f"hand bmm/loop ({name})", speedup(times, "loop", "hand")))
        rows.append(row(f"ensemble/hand bmm ({name})", speedup(times, "hand", "fmlab"), ">= 0.9"))
        work = step_flops(d, batch) * args.members * args.steps
        peak = 2 * GEMM_N**3 * GEMM_CALLS / statistics.median(times["peak"])
        rates = {k: work / statistics.median(times[k]) / 1e9 for k in fns}
        detail.append({"config": name, "gflop_per_s": rates, "peak_gflop_per_s": peak / 1e9})
        print(
            f"{name}: "
            + ", ".join(f"{k} {v:.1f}" for k, v in rates.items())
            + f" GFLOP/s; GEMM peak {peak / 1e9:.1f} GFLOP/s (same rounds)"
        )
    emit(
        "ensemble",
        rows,
        members=args.members,
        steps=args.steps,
        threads=torch.get_num_threads(),
        detail=detail,
    )


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
