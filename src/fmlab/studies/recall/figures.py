"""Figures of a ``recall`` run, read from its run directory (never from training):
accuracy against width and against state size (one line per mixer, as Zoology's Fig. 2
and Based's Fig. 1), accuracy against the number of pairs, and learning curves."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from matplotlib.ticker import NullFormatter

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.stats import t_interval
from fmlab.stats.bounds import UNIT
from fmlab.store import RunData


def _points(rows: list[dict], x: str, where: dict[str, Any]) -> dict[str, list[tuple]]:
    """Per mixer: (x, mean, low, high, per-seed values) sorted by x."""
    out: dict[str, list[tuple]] = {}
    sel = [r for r in rows if all(r[k] == v for k, v in where.items())]
    for mixer in dict.fromkeys(r["mixer"] for r in sel):
        pts = []
        for xv in sorted({r[x] for r in sel if r["mixer"] == mixer}):
            accs = [r["acc"] for r in sel if r["mixer"] == mixer and r[x] == xv]
            ci = t_interval(accs, bounds=UNIT)  # accuracy lives in [0, 1]
            pts.append((xv, ci.estimate, ci.low, ci.high, accs))
        out[mixer] = pts
    return out


def _plot(ax, series: dict[str, list[tuple]], log2: bool = True) -> None:
    for color, (mixer, pts) in zip(PALETTE, series.items(), strict=False):
        xs = np.array([p[0] for p in pts], float)
        mean = np.array([p[1] for p in pts])
        low = np.array([p[2] for p in pts])
        high = np.array([p[3] for p in pts])
        ax.plot(xs, mean, "o-", color=color, lw=1.6, label=mixer)
        ok = np.isfinite(low)
        ax.fill_between(xs[ok], low[ok], high[ok], color=color, alpha=0.15, lw=0)
        for xv, *_, seeds in pts:
            ax.scatter([xv] * len(seeds), seeds, s=9, color=color, alpha=0.5)
    if log2:
        ax.set_xscale("log", base=2)
    ax.axhline(0.99, color="#888888", lw=0.8, ls=":")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()


def figures(run: RunData) -> dict[str, object]:
    path = run.artifacts / "results.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())
    cfg = run.config
    n0 = cfg["task"]["n_pairs"]
    T = cfg["task"]["seq_len"]
    out: dict[str, object] = {}

    fig, ax = new_figure()
    _plot(ax, _points(rows, "d_model", {"n_pairs": n0}))
    ax.set(xlabel="model width d_model", ylabel="MQAR accuracy (queries)")
    ax.set_title(f"Accuracy vs width (T={T}, {n0} pairs; mean, 95% CI, seeds)")
    out["accuracy_vs_width"] = styled(fig)

    fig, ax = new_figure()
    _plot(ax, _points(rows, "state_size", {"n_pairs": n0}), log2=False)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a short range
    ax.set(xlabel="state carried per sequence (numbers, log)", ylabel="MQAR accuracy")
    ax.set_title("Accuracy vs generation state size")
    out["accuracy_vs_state"] = styled(fig)

    if cfg.get("pairs_width") is not None and len(cfg.get("pair_counts") or []) > 1:
        fig, ax = new_figure()
        _plot(ax, _points(rows, "n_pairs", {"d_model": cfg["pairs_width"]}))
        ax.set(xlabel="key–value pairs", ylabel="MQAR accuracy (queries)")
        ax.set_title(f"Accuracy vs pairs at d_model={cfg['pairs_width']}")
        out["accuracy_vs_pairs"] = styled(fig)

    m = run.metrics
    if "mixer" in m:
        width = min(cfg["widths"])
        fig, ax = new_figure()
        sel = m[(m["name"] == "test_acc") & (m["d_model"] == width) & (m["n_pairs"] == n0)]
        for color, (mixer, g) in zip(PALETTE, sel.groupby("mixer", sort=False), strict=False):
            for i, (_, s) in enumerate(g.groupby("seed")):
                s = s.sort_values("step")
                ax.plot(s["step"], s["value"], color=color, lw=1.2, label=None if i else mixer)
        ax.set(xlabel="step", ylabel="test accuracy", title=f"Learning curves at d_model={width}")
        ax.legend()
        out["learning_curves"] = styled(fig)
    return out
