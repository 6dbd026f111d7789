"""Streaming / minibatch linear CKA vs the naive n×n Gram-matrix CKA, in the same run.

The naive estimator (Kornblith et al. 2019's reference code: K = XXᵀ, L = YYᵀ, centre,
⟨Kc, Lc⟩) needs two n×n float64 matrices: 2 · 50,000² · 8 B = 40 GB at n = 50,000, so the
like-for-like comparison is made at the largest n the naive version fits (default 5,000),
on the same data: naive and streaming are timed in ``--rounds`` interleaved rounds (A, B,
A, B …) and the headline is the median of the per-round ratios with min–max. Peak memory
is measured once per estimator (it does not vary between calls). The streaming
estimators are also run at the full n; what the naive one *would* need there is printed
as an estimate (O(n²) time from the largest naive n, a·n² + b·n memory through the two
naive sizes), labelled as such and never used as the headline.

* ``StreamingLinearCKA`` — exact linear CKA from accumulated (cross-)covariances.
* ``MinibatchCKA`` — Nguyen et al. 2021: unbiased HSIC averaged over minibatches (it
  estimates *debiased* CKA, so its value differs from the exact biased one by ~d/n).

Peak memory is what tracemalloc sees allocated during the call (numpy reports its
buffers to tracemalloc); the input data are generated before tracing starts and are
not counted. Run: ``python benchmarks/cka.py [--n 50000 --d 1024 --naive-n 2500 5000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from _common import emit, interleaved, row, speedup

from fmlab.measure import MinibatchCKA, StreamingLinearCKA


def naive_linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """The n×n Gram form, written as economically as Kornblith et al.'s code (in place)."""
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    grams = []
    for Z in (X, Y):
        G = Z @ Z.T  # (n, n)
        means = G.mean(axis=0)
        G -= means[None, :]
        G -= (means - means.mean())[:, None]  # G is now H G H
        grams.append(G)
    K, L = grams
    return float(np.vdot(K, L) / np.sqrt(np.vdot(K, K) * np.vdot(L, L)))


def make_data(n: int, d: int, batch: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Batches of related float32 representations: Y = tanh(XW) + noise, (batch, d) each."""
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((d, d), dtype=np.float32) / np.sqrt(d)).astype(np.float32)
    out = []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        X = rng.standard_normal((m, d), dtype=np.float32)
        Y = np.tanh(X @ W) + 0.5 * rng.standard_normal((m, d), dtype=np.float32)
        out.append((X, Y))
    return out


def measure(fn: Callable[[], float]) -> dict[str, float]:
    """Run fn once; wall time and tracemalloc peak of what it allocated."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"value": value, "time_s": wall, "peak_mb": peak / 2**20}


def extrapolate_memory(rows: dict[str, dict], naive_ns: list[int], n: int) -> float:
    """Naive peak memory at n: a·n² + b·n through the two largest naive sizes.

    The n² term is the two Gram matrices, the n term the float64 copies of the (n, d)
    inputs; scaling the whole measured peak by n² would overstate the latter. With one
    naive size, plain O(n²) scaling.
    """
    n1 = naive_ns[-1]
    p1 = rows[f"naive n={n1}"]["peak_mb"]
    if len(naive_ns) == 1:
        return p1 * (n / n1) ** 2
    n0 = naive_ns[-2]
    p0 = rows[f"naive n={n0}"]["peak_mb"]
    a, b = np.linalg.solve([[n0**2, n0], [n1**2, n1]], [p0, p1])
    return float(a * n**2 + b * n) if a > 0 and b >= 0 else p1 * (n / n1) ** 2


def stream(acc_cls: type, batches: list[tuple[np.ndarray, np.ndarray]]) -> Callable[[], float]:
    def run() -> float:
        acc = acc_cls()
        for X, Y in batches:
            acc.update(X, Y)
        return acc.value()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=2500)
    ap.add_argument("--naive-n", type=int, nargs="+", default=[2500, 5000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    args = ap.parse_args()
    n, d, naive_ns = args.n, args.d, sorted(args.naive_n)
    n0 = naive_ns[-1]
    if n0 % args.batch or n0 > n:
        raise SystemExit("--naive-n sizes must be <= --n and multiples of --batch")

    batches = make_data(n, d, args.batch, args.seed)
    small = batches[: n0 // args.batch]  # the first n0 examples, same data for both
    rows: dict[str, dict] = {}
    for m in naive_ns:
        k = m // args.batch
        X, Y = (np.concatenate([b[i] for b in batches[:k]]) for i in (0, 1))
        rows[f"naive n={m}"] = {"n": m, **measure(lambda X=X, Y=Y: naive_linear_cka(X, Y))}
        del X, Y
    rows[f"streaming n={n0}"] = {"n": n0, **measure(stream(StreamingLinearCKA, small))}
    rows[f"streaming n={n}"] = {"n": n, **measure(stream(StreamingLinearCKA, batches))}
    rows[f"minibatch n={n}"] = {"n": n, **measure(stream(MinibatchCKA, batches))}

    X0, Y0 = (np.concatenate([b[i] for b in small]) for i in (0, 1))
    contenders = {
        "naive": lambda: naive_linear_cka(X0, Y0),
        "streaming": stream(StreamingLinearCKA, small),
    }
    times = interleaved(contenders, args.rounds)
    rows[f"naive n={n} (estimate, not run)"] = {
        "n": n,
        "value": None,  # not run
        "time_s": rows[f"naive n={n0}"]["time_s"] * (n / n0) ** 2,
        "peak_mb": extrapolate_memory(rows, naive_ns, n),
    }
    report(rows, args, naive_ns, n0, times)


def report(
    rows: dict[str, dict], args: argparse.Namespace, naive_ns: list[int], n0: int, times: dict
) -> None:
    n, d = args.n, args.d
    print(f"linear CKA, d={d}, batch={args.batch}, float64 arithmetic, cpus={os.cpu_count()}")
    print(f"{'estimator':<34}{'n':>8}{'CKA':>12}{'time s':>10}{'peak MB':>12}")
    for name, r in rows.items():
        value = "—" if r["value"] is None else f"{r['value']:.6f}"
        print(f"{name:<34}{r['n']:>8}{value:>12}{r['time_s']:>10.2f}{r['peak_mb']:>12.1f}")

    same_naive, same_stream = rows[f"naive n={n0}"], rows[f"streaming n={n0}"]
    full_stream, extrap = rows[f"streaming n={n}"], rows[f"naive n={n} (estimate, not run)"]
    ratios = speedup(times, "naive", "streaming")
    result = {
        "benchmark": "cka",
        "n": n,
        "d": d,
        "batch": args.batch,
        "naive_n": n0,
        "agreement_at_naive_n": abs(same_naive["value"] - same_stream["value"]),
        "speedup_at_naive_n": float(np.median(ratios)),
        "speedup_rounds": ratios,
        "memory_ratio_at_naive_n": same_naive["peak_mb"] / same_stream["peak_mb"],
        "speedup_at_n_estimate": extrap["time_s"] / full_stream["time_s"],
        "memory_ratio_at_n_estimate": extrap["peak_mb"] / full_stream["peak_mb"],
        "naive_gram_gb_at_n_theory": 2 * n * n * 8 / 1e9,
        "rows": rows,
    }
    if len(naive_ns) > 1:
        a, b = rows[f"naive n={naive_ns[0]}"], same_naive
        result["naive_time_exponent"] = np.log(b["time_s"] / a["time_s"]) / np.log(n0 / naive_ns[0])
        result["naive_memory_exponent"] = np.log(b["peak_mb"] / a["peak_mb"]) / np.log(
            n0 / naive_ns[0]
        )
    print(
        f"\nsame data, n={n0}: streaming is {result['speedup_at_naive_n']:.1f}x faster (median of "
        f"{len(ratios)} interleaved rounds, {min(ratios):.1f}-{max(ratios):.1f}) and uses "
        f"{result['memory_ratio_at_naive_n']:.1f}x less peak memory; |ΔCKA| = "
        f"{result['agreement_at_naive_n']:.1e}"
    )
    print(
        f"n={n}: streaming took {full_stream['time_s']:.2f} s; the naive estimator was not run "
        f"there (its two Gram matrices alone need {result['naive_gram_gb_at_n_theory']:.0f} GB); "
        f"an ESTIMATE from n<={n0}: ~{result['speedup_at_n_estimate']:.0f}x the time and "
        f"~{result['memory_ratio_at_n_estimate']:.0f}x the peak memory of streaming"
    )
    if "naive_time_exponent" in result:
        print(
            f"naive scaling measured between n={naive_ns[0]} and n={n0}: time ∝ n^"
            f"{result['naive_time_exponent']:.2f}, memory ∝ n^{result['naive_memory_exponent']:.2f}"
        )
    print(json.dumps(result, default=float))
    emit(
        "cka",
        [
            row(f"streaming / naive linear CKA (n {n0}, d {d}, same data)", ratios),
        ],
        memory_ratio=result["memory_ratio_at_naive_n"],
    )


if __name__ == "__main__":
    main()
