"""Figures of an ``emergence`` run, from ``artifacts/emergence.json``: the paper's
side-by-side (the same outputs under a discontinuous and a continuous metric, against
parameters), exact match against ``Π acc_i`` and ``acc^L``, and ECE against size."""

from __future__ import annotations

import json

import numpy as np

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.store import RunData


def figures(run: RunData) -> dict[str, object]:
    path = run.artifacts / "emergence.json"
    if not path.exists():
        return {}
    d = json.loads(path.read_text())
    return {"side_by_side": _side(d), "em_vs_product": _product(d), "calibration": _ece(d)}


def _side(d: dict):
    N = np.array(d["n_params"])
    tasks = d["length_tasks"]
    fig, axes = new_figure(ncols=4, width=3.3)
    panels = [
        ("em", "exact match"),
        ("tok_acc", "per-token accuracy"),
        ("mc_acc", "multiple-choice accuracy"),
        ("logp", "target log-probability"),
    ]
    for ax, (key, label) in zip(axes, panels, strict=True):
        for color, t in zip(PALETTE, tasks, strict=False):
            ax.plot(
                N,
                d["tasks"][t][key],
                "o-",
                ms=3,
                color=color,
                label=f"{t} (L={d['tasks'][t]['L']})",
            )
        ax.set(xscale="log", xlabel="non-embedding parameters", ylabel=label)
    axes[0].legend(fontsize=7)
    return styled(fig)


def _product(d: dict):
    N = np.array(d["n_params"])
    t = d["main_task"]
    c = d["tasks"][t]
    fig, ax = new_figure(width=4.5)
    ax.plot(N, c["em"], "o-", color=PALETTE[0], label="exact match")
    ax.plot(N, c["prod_acc"], "s--", color=PALETTE[1], label="Π_i acc_i")
    ax.plot(N, c["tok_acc_pow_L"], "^:", color=PALETTE[2], label=f"acc^L (L={c['L']})")
    ax.set(xscale="log", xlabel="non-embedding parameters", ylabel="rate", title=t)
    ax.legend(fontsize=7)
    return styled(fig)


def _ece(d: dict):
    N = np.array(d["n_params"])
    e = np.array(d["ece"])
    fig, ax = new_figure(width=4.5)
    for k, row in enumerate(e):
        ax.plot(N, row, "o-", ms=3, alpha=0.5, color=PALETTE[k % len(PALETTE)])
    ax.plot(N, e.mean(0), "k-", lw=2, label="mean over seeds")
    ax.set(xscale="log", xlabel="non-embedding parameters", ylabel="ECE (multiple choice)")
    ax.legend(fontsize=7)
    return styled(fig)
