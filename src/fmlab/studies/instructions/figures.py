"""Figures of an ``instructions`` run, read from ``artifacts/instructions.json``: accuracy
against the number of training clusters per evaluation set (mean and 95% CI over seeds),
and each seed's held-out curve with its fitted slope."""

from __future__ import annotations

import json

import numpy as np

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.stats.seeds import t_interval
from fmlab.store import RunData

LABELS = {
    "single": "single primitives",
    "trained": "trained compositions",
    "reversed": "trained clusters, unseen order",
    "heldout": "held-out clusters",
}


def figures(run: RunData) -> dict[str, object]:
    path = run.artifacts / "instructions.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {"accuracy_vs_clusters": _vs_k(data), "heldout_by_seed": _by_seed(data)}


def _x(ks: list[int]) -> np.ndarray:
    """k on a log2 axis with the base (k = 0) drawn one step left of k = 1."""
    return np.array([np.log2(k) if k > 0 else -1.0 for k in ks])


def _vs_k(data: dict):
    ks = data["ks"]
    fig, ax = new_figure(width=5.5)
    x = _x(ks)
    for color, (kind, label) in zip(PALETTE, LABELS.items(), strict=False):
        rows = {k: [np.nan if v is None else v for v in vs] for k, vs in data["acc"][kind].items()}
        keep = [i for i, k in enumerate(ks) if not np.all(np.isnan(rows[str(k)]))]
        cis = [t_interval(rows[str(ks[i])], bounds=(0.0, 1.0)) for i in keep]
        mean = np.array([c.estimate for c in cis])
        lo = np.array([c.low for c in cis])
        hi = np.array([c.high for c in cis])
        ax.plot(x[keep], mean, "o-", color=color, label=label)
        ax.fill_between(x[keep], lo, hi, color=color, alpha=0.2, lw=0)
    ax.set_xticks(x, ["base"] + [str(k) for k in ks[1:]])
    ax.set(xlabel="training clusters k (log2 axis)", ylabel="exact-match accuracy",
           ylim=(-0.02, 1.02), title="zero-shot accuracy vs clusters (same examples)")  # fmt: skip
    ax.legend(fontsize=7)
    return styled(fig)


def _by_seed(data: dict):
    ks = [k for k in data["ks"] if k > 0]
    fig, ax = new_figure(width=5.0)
    x = np.log2(ks)
    for color, (i, seed) in zip(PALETTE, enumerate(data["seeds"]), strict=False):
        y = np.array([data["acc"]["heldout"][str(k)][i] for k in ks])
        b = data["slopes"][i]
        ax.plot(x, y, "o", color=color, label=f"seed {seed}: slope {b:.3f}/doubling")
        ax.plot(x, y.mean() + b * (x - x.mean()), "-", color=color, lw=1)
    ax.set_xticks(x, [str(k) for k in ks])
    ax.set(xlabel="training clusters k (log2 axis)", ylabel="held-out accuracy",
           title="held-out clusters: per-seed fit against log2 k")  # fmt: skip
    ax.legend(fontsize=7)
    return styled(fig)
