"""Sequence mixers: training throughput, and the chunked selective scan vs a time loop.

1. Tokens per second of forward + backward through each registered mixer alone (no
   embedding, no MLP) at sequence lengths 256 and 1,024, with the same number of tokens
   per step at both lengths, so the columns show how each mixer's cost grows with T:
   attention is quadratic, the others are (near) linear.
2. The SSM's chunked scan (``ssd_scan``, Dao & Gu 2024 §6) against the same recurrence
   written as a Python loop over time, forward + backward on the same inputs, in the same
   run; the outputs are checked to agree.

Times alternate between contenders (A, B, A, B …) so a change in machine load hits all
alike; medians are reported. One torch thread unless ``--threads`` says otherwise.
Run: ``python benchmarks/mixers.py [--d-model 128 --tokens 8192 --repeats 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import torch
from _common import emit, interleaved, row, speedup

from fmlab.models import GPTConfig
from fmlab.models.mixers import MIXERS, build_mixer, mixer_info
from fmlab.models.mixers.ssm import ssd_scan

LENGTHS = (256, 1024)


def fwd_bwd(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        module(x).square().mean().backward()

    return step


def throughput(d_model: int, n_heads: int, tokens: int, repeats: int) -> list[dict]:
    rows, fns = [], {}
    for T in LENGTHS:
        x = torch.randn(max(tokens // T, 1), T, d_model, generator=torch.Generator().manual_seed(0))
        for name in MIXERS.names():
            options = (
                {"filter_len": T} if "filter_len" in MIXERS.get(name).config.model_fields else {}
            )
            cfg = GPTConfig(d_model=d_model, n_heads=n_heads, mixer={"kind": name, **options})
            mixer = build_mixer(cfg, torch.Generator().manual_seed(0))
            fns[f"{name} T={T}"] = fwd_bwd(mixer, x)
            info = mixer_info(mixer, T, name)
            rows.append(
                {
                    "mixer": name,
                    "seq_len": T,
                    "batch": x.shape[0],
                    "params": info.params,
                    "state_size": info.state_size,
                    "flops_per_token": info.flops_per_token,
                }
            )
    times = interleaved(fns, repeats, warmup=True)
    for r in rows:
        median = statistics.median(times[f"{r['mixer']} T={r['seq_len']}"])
        r["tokens_per_s"] = r["batch"] * r["seq_len"] / median
    return rows


def scan_loop(x, a, B, C):
    """h_t = exp(a_t) h_{t-1} + x_t B_tᵀ, y_t = h_t C_t, one Python step per position."""
    b, T, H, P = x.shape
    h, ys = x.new_zeros(b, H, P, B.shape[-1]), []
    for t in range(T):
        h = torch.exp(a[:, t, :, None, None]) * h + x[:, t, :, :, None] * B[:, t, None, None, :]
        ys.append((h * C[:, t, None, None, :]).sum(-1))
    return torch.stack(ys, dim=1)


def scan_vs_loop(d_model: int, n_heads: int, tokens: int, repeats: int) -> list[dict]:
    rows = []
    for T in LENGTHS:
        g = torch.Generator().manual_seed(T)
        b, H, N = max(tokens // T, 1), n_heads, 16
        P = 2 * d_model // H
        x = torch.randn(b, T, H, P, generator=g, requires_grad=True)
        a = (-torch.rand(b, T, H, generator=g)).requires_grad_()
        B, C = (torch.randn(b, T, N, generator=g, requires_grad=True) for _ in "BC")
        args = (x, a, B, C)
        fns = {
            "chunked": lambda args=args: ssd_scan(*args)[0].square().mean().backward(),
            "loop": lambda args=args: scan_loop(*args).square().mean().backward(),
        }
        with torch.no_grad():
            err = (ssd_scan(x, a, B, C)[0] - scan_loop(x, a, B, C)).abs().max().item()
        times = interleaved(fns, repeats, warmup=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(
            {
                "seq_len": T,
                "batch": b,
                "chunked_s": med["chunked"],
                "loop_s": med["loop"],
                "speedup": med["loop"] / med["chunked"],
                "max_abs_diff": err,
                "round_speedups": speedup(times, "loop", "chunked"),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per step (batch × T)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = throughput(args.d_model, args.n_heads, args.tokens, args.repeats)
    print(f"forward+backward, d_model={args.d_model}, {args.tokens} tokens/step")
    print(f"{'mixer':<18}{'T':>6}{'params':>9}{'state/seq':>11}{'FLOP/tok':>11}{'tok/s':>10}")
    for r in rows:
        print(
            f"{r['mixer']:<18}{r['seq_len']:>6}{r['params']:>9}{r['state_size']:>11}"
            f"{r['flops_per_token']:>11.3g}{r['tokens_per_s']:>10.0f}"
        )
    scans = scan_vs_loop(args.d_model, args.n_heads, args.tokens, args.repeats)
    print("selective scan, forward+backward: chunked (SSD) vs Python loop over time")
    for s in scans:
        print(
            f"  T={s['seq_len']:<5} chunked {s['chunked_s']:.4f} s  loop {s['loop_s']:.4f} s  "
            f"speed-up {s['speedup']:.1f}x  (max |diff| {s['max_abs_diff']:.1e})"
        )
    table = [
        row(f"SSD chunked scan / Python time loop (T {s['seq_len']}, fwd+bwd)", s["round_speedups"])
        for s in scans
    ]
    attn = {r["seq_len"]: r["tokens_per_s"] for r in rows if r["mixer"] == "attention"}
    print(json.dumps({"benchmark": "mixers", "threads": args.threads, "throughput": rows}))
    emit("mixers", table, attention_tokens_per_s=attn)


if __name__ == "__main__":
    main()
