"""Time and peak memory of ``fmlab fit`` against the number of CSV rows (10^3 … 10^6).

For each size a CSV is generated from a known law plus noise (``chinchilla``: Hoffmann et al.'s
law, ``sample_chinchilla`` with 2 % log-normal noise; ``power-law``: ``1.7 + 400 x^-0.3``;
``isoflop``: eight FLOP budgets, sizes log-uniform around each budget's optimum under
Hoffmann's law), then ``fmlab fit <kind> <csv> --json --no-figures --bootstrap B`` runs in a
fresh subprocess, in-process there (so interpreter start-up and imports are not timed). The
subprocess reports the command's wall time, its peak RSS (``getrusage(RUSAGE_SELF)`` read at
the end, which is what ``RUSAGE_CHILDREN`` gives the parent for that one child) and its RSS
before the command (imports), so ``rss_fit_mb`` is what the fit itself added. Each run is
capped at ``--max-rss-gb`` of address space and ``--timeout`` seconds, so an unbounded fit
fails here instead of taking the machine down.

Growth: for consecutive sizes the ratios ``time(10n)/time(n)`` and ``rss_fit(10n)/rss_fit(n)``
are printed; linear growth is 10, anything at or below it is no worse than linear. Run:
``python benchmarks/fit_scaling_rows.py [--sizes 1000 10000 100000 1000000] [--kind chinchilla]``
(a few minutes on 2 cores). ``PYTHONPATH=<other checkout>/src`` measures another version.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

_CHILD = r"""
import json, resource, sys, time, io, contextlib
from fmlab.cli import app
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
args, report = json.loads(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
buf = io.StringIO()
status = 0
with contextlib.redirect_stdout(buf):
    try:
        app(args, standalone_mode=False)
    except SystemExit as e:
        status = e.code or 0
wall = time.perf_counter() - t0
out = buf.getvalue()
res = json.loads(out) if status == 0 and out.strip().startswith("{") else {}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(report, "w") as f:
    json.dump({"wall_s": wall, "rss_before_kb": rss0, "rss_peak_kb": peak, "status": status,
               "params": res.get("params") or res.get("compute_optimal"),
               "subsample": (res.get("diagnostics") or {}).get("subsample")}, f)
"""


def make_csv(kind: str, n: int, path: Path, seed: int = 0) -> None:
    from fmlab.fit import HOFFMANN_PARAMS, sample_chinchilla

    rng = np.random.default_rng(seed)
    if kind == "chinchilla":
        sample_chinchilla(n, noise=0.02, seed=seed).to_csv(path, index=False)
    elif kind == "power-law":
        x = np.exp(rng.uniform(np.log(1e6), np.log(1e10), n))
        y = (1.7 + 400.0 * x**-0.3) * np.exp(0.02 * rng.standard_normal(n))
        pd.DataFrame({"x": x, "y": y}).to_csv(path, index=False)
    elif kind == "isoflop":
        budgets = np.geomspace(1e18, 1e21, 8)
        C = budgets[rng.integers(0, len(budgets), n)]
        n_opt, _ = HOFFMANN_PARAMS.compute_optimal(C)
        N = n_opt * np.exp(rng.uniform(-1.5, 1.5, n))
        loss = HOFFMANN_PARAMS.predict(N, C / (6 * N)) * np.exp(0.005 * rng.standard_normal(n))
        pd.DataFrame({"N": N, "loss": loss, "C": C}).to_csv(path, index=False)
    else:
        raise ValueError(kind)


def command(kind: str, csv: Path, bootstrap: int) -> list[str]:
    extra = {"power-law": ["--x-col", "x", "--y-col", "y", "--saturating"]}.get(kind, [])
    return ["fit", kind, str(csv), *extra, "--json", "--no-figures", "--bootstrap", str(bootstrap)]


def run_one(args: list[str], max_rss_gb: float, timeout: float) -> dict:
    limit = int(max_rss_gb * 2**30)

    def cap() -> None:  # address space, so a runaway fit fails with MemoryError, not the OOM killer
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        report = f.name
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(args), report],
            capture_output=True, text=True, timeout=timeout, preexec_fn=cap, env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    try:
        data = json.loads(Path(report).read_text())
    except (OSError, ValueError):
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return {"error": tail[0][:200]}
    finally:
        Path(report).unlink(missing_ok=True)
    if data["status"] != 0:
        data["error"] = (proc.stderr or "").strip().splitlines()[-1:]
    data["rss_peak_mb"] = data.pop("rss_peak_kb") / 1024
    data["rss_fit_mb"] = data["rss_peak_mb"] - data.pop("rss_before_kb") / 1024
    return data


def growth(rows: list[dict], key: str) -> list[float | None]:
    """``value(next) / value(this)`` per size step, divided by the step in rows (1 = linear)."""
    out = []
    for a, b in itertools.pairwise(rows):
        if key in a and key in b and a[key] > 0:
            out.append(round((b[key] / a[key]) / (b["rows"] / a["rows"]), 3))
        else:
            out.append(None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--kind", default="chinchilla", choices=["chinchilla", "power-law", "isoflop"])
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples (the CLI default)")
    ap.add_argument("--max-rss-gb", type=float, default=8.0, help="address-space cap per run")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            csv = Path(tmp) / f"{args.kind}_{n}.csv"
            make_csv(args.kind, n, csv)
            res = run_one(command(args.kind, csv, args.bootstrap), args.max_rss_gb, args.timeout)
            rows.append({"rows": n, **res})
            shown = (
                res["error"]
                if "error" in res
                else f"{res['wall_s']:8.2f} s  peak RSS {res['rss_peak_mb']:8.1f} MB  "
                f"(fit {res['rss_fit_mb']:8.1f} MB)"
            )
            print(f"  {args.kind} {n:>9} rows: {shown}", flush=True)
    time_growth, mem_growth = growth(rows, "wall_s"), growth(rows, "rss_fit_mb")
    print(f"  time growth per step, relative to linear (<= 1: no worse): {time_growth}")
    print(f"  fit memory growth per step, relative to linear: {mem_growth}")
    print(
        json.dumps(
            {
                "benchmark": f"fit_scaling_rows_{args.kind}",
                "bootstrap": args.bootstrap,
                "sizes": rows,
                "time_growth_vs_linear": time_growth,
                "rss_growth_vs_linear": mem_growth,
                # timings on a shared machine vary by ~20 %: a time step counts as linear
                # up to 1.25x linear growth; memory must not grow faster than linearly
                "no_worse_than_linear": all(g is not None and g <= 1.25 for g in time_growth)
                and all(g is not None and g <= 1.0 for g in mem_growth),
            }
        )
    )


if __name__ == "__main__":
    main()
