"""Run every benchmark and print one table of ratios (``make bench``).

Each benchmark script times its contenders in interleaved rounds (A, B, A, B …) and
prints one ``FMLAB_BENCH {json}`` line with its rows (see ``_common.emit``); this script
runs them one after another in fresh processes, gathers those lines and prints a
Markdown table: per row the median ratio over the rounds with its min–max and the
target where there is one. A ratio > 1 means the first-named contender is faster.

Not run here: ``gpu_check.py`` (needs a CUDA machine) and ``fit_scaling_rows.py``
(growth of time and memory with input size, not a ratio of contenders).

    python benchmarks/run_all.py [--only ensemble gpt_speed] [--out bench.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"_common", "run_all", "gpu_check", "fit_scaling_rows"}
ROUNDS = 5
# The arguments used for the table: at least ROUNDS interleaved rounds each; sizes chosen so
# that the whole table takes minutes on two cores. Scripts not named run with defaults.
ARGS: dict[str, list[list[str]]] = {
    "lora": [["--rounds", str(ROUNDS)]],
    "ensemble": [["--quick", "--rounds", str(ROUNDS)]],  # the launch-bound configs
    "gpt_speed": [["--rounds", str(ROUNDS)]],
    "mixers": [["--repeats", str(ROUNDS)]],
    "train_overhead": [["--repeats", str(ROUNDS), "--threads", "1"]],
    "cka": [["--n", "20000", "--rounds", str(ROUNDS)]],
    "fit_chinchilla": [["--rounds", str(ROUNDS)]],
    "watermark_detect": [["--repeats", str(ROUNDS)], ["--repeats", str(ROUNDS), "--ids", "zipf"]],
}


def scripts(only: list[str] | None) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in SKIP)
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; have {', '.join(names)}")
        names = [n for n in names if n in only]
    return names


def run_one(name: str, argv: list[str], log) -> tuple[list[dict], str | None]:
    """Run one benchmark; its rows, or the reason it gave none."""
    cmd = [sys.executable, str(HERE / f"{name}.py"), *argv]
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
    log.write(proc.stdout + proc.stderr)
    log.flush()
    rows = []
    for line in proc.stdout.splitlines():
        if line.startswith("FMLAB_BENCH "):
            rows += json.loads(line[len("FMLAB_BENCH ") :])["rows"]
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return rows, f"exit {proc.returncode}: {tail[0]}"
    return rows, None if rows else "printed no FMLAB_BENCH line"


def table(results: list[tuple[str, dict]]) -> str:
    lines = [
        "| benchmark | ratio | median | min–max | rounds | target |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, r in results:
        met = ""
        if r["target"].startswith(">="):
            met = " ✓" if r["median"] >= float(r["target"][2:]) else " ✗"
        lines.append(
            f"| {name} | {r['label']} | {r['median']:.2f}× | {r['min']:.2f}–{r['max']:.2f} "
            f"| {r['rounds']} | {r['target']}{met} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", help="run these benchmarks only")
    ap.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    ap.add_argument("--log", type=Path, default=Path("bench.log"), help="full output of each run")
    args = ap.parse_args()
    results, failures = [], []
    started = time.time()
    with open(args.log, "w") as log:
        for name in scripts(args.only):
            for argv in ARGS.get(name, [[]]):
                t0 = time.time()
                print(f"{name} {' '.join(argv)} …", end=" ", flush=True, file=sys.stderr)
                rows, error = run_one(name, argv, log)
                print(f"{time.time() - t0:.0f} s", file=sys.stderr)
                results += [(name, r) for r in rows]
                if error:
                    failures.append(f"{name}: {error}")
    head = (
        f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{(time.time() - started) / 60:.0f} min; full output in {args.log}"
    )
    text = head + "\n\n" + table(results)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
