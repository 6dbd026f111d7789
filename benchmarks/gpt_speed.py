"""fmlab's GPT against a real peer: Hugging Face's GPT2LMHeadModel (SDPA attention).

Both models are built at the same configuration (pre-LN, learned positions, GELU MLP of
4·d, untied unembedding, no dropout) and trained with the same AdamW on the same batches,
one torch thread. Each round times one training step of every contender and one GEMM of
the peak size, in turn (A, B, peak, A, B, peak …), so load changes hit all alike. Prints,
per config: tokens/s of both, the ratio fmlab/peer (> 1: fmlab faster), and the achieved
GFLOP/s of each (6·N·tokens plus attention's 12·L·T·d per token, causal half) against the
measured GEMM peak.

    python benchmarks/gpt_speed.py [--rounds 7] [--tokens 4096] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from _common import emit, interleaved, row, speedup

from fmlab.models import GPT, GPTConfig

CONFIGS = [  # (d_model, seq_len, n_layers)
    (32, 64, 2),
    (64, 128, 2),
    (128, 128, 4),
    (128, 512, 2),
    (256, 256, 4),
    (256, 512, 2),
]
VOCAB = 256


def fmlab_model(d: int, T: int, L: int) -> torch.nn.Module:
    cfg = GPTConfig(d_model=d, n_layers=L, n_heads=max(1, d // 32), d_mlp=4 * d, act="gelu")
    return GPT(cfg, vocab_size=VOCAB, seq_len=T, generator=torch.Generator().manual_seed(0))


def hf_model(d: int, T: int, L: int) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=VOCAB, n_positions=T, n_embd=d, n_layer=L, n_head=max(1, d // 32),
        n_inner=4 * d, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=False, activation_function="gelu", attn_implementation="sdpa",
    )  # fmt: skip
    torch.manual_seed(0)
    return GPT2LMHeadModel(cfg)


def step_fn(model: torch.nn.Module, batch: torch.Tensor, hf: bool):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)

    def step() -> None:
        logits = model(batch[:, :-1]).logits if hf else model(batch[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def flops_per_step(model: torch.nn.Module, d: int, T: int, L: int, tokens: int) -> float:
    n = sum(p.numel() for p in model.parameters())
    attention = 12 * L * T * d / 2  # QKᵀ and AV, forward and backward, causal half
    return 6 * n * tokens + attention * tokens


def gemm(size: int = 512):
    a, b = torch.randn(size, size), torch.randn(size, size)

    def run() -> None:
        a @ b

    return run, 2 * size**3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 5)")
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per step (both)")
    parser.add_argument("--quick", action="store_true", help="the first two configs only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    peak_fn, peak_flops = gemm()
    rows, table = [], []
    for d, T, L in CONFIGS[:2] if args.quick else CONFIGS:
        batch = torch.randint(0, VOCAB, (max(1, args.tokens // T), T + 1),
                              generator=torch.Generator().manual_seed(1))  # fmt: skip
        a, b = fmlab_model(d, T, L), hf_model(d, T, L)
        fns = {"fmlab": step_fn(a, batch, False), "hf": step_fn(b, batch, True), "peak": peak_fn}
        times = interleaved(fns, args.rounds, warmup=True)
        tokens = batch.shape[0] * T
        med = {k: statistics.median(v) for k, v in times.items()}
        ratios = speedup(times, "hf", "fmlab")
        table.append(row(f"fmlab GPT / HF GPT2 (d {d}, T {T}, L {L})", ratios, ">= 1.0"))
        rows.append(
            {
                "d_model": d, "seq_len": T, "n_layers": L, "batch": batch.shape[0],
                "fmlab_tokens_per_s": round(tokens / med["fmlab"]),
                "hf_tokens_per_s": round(tokens / med["hf"]),
                "ratio_fmlab_over_hf": round(statistics.median(ratios), 3),
                "ratio_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
                "fmlab_gflops": round(flops_per_step(a, d, T, L, tokens) / med["fmlab"] / 1e9, 1),
                "hf_gflops": round(flops_per_step(b, d, T, L, tokens) / med["hf"] / 1e9, 1),
                "gemm_peak_gflops": round(peak_flops / med["peak"] / 1e9, 1),
            }
        )  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    emit("gpt_speed", table, configs=rows)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
