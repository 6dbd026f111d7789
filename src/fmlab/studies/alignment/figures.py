"""Figures of an ``alignment`` run, read from ``artifacts/alignment.json``: the reward–KL
frontiers, KL against steps on deterministic preferences, reliability diagrams before and
after, and where the top-1 token moved."""

from __future__ import annotations

import json

import numpy as np

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.store import RunData
from fmlab.studies.alignment.summary import GRID, envelope, points_of


def figures(run: RunData) -> dict[str, object]:
    path = run.artifacts / "alignment.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    out = {"frontier": _frontier(data), "calibration": _calibration(data)}
    if data["det_methods"]:
        out["deterministic_kl"] = _deterministic(data)
    out["token_shift"] = _shift(data)
    return out


def _frontier(data: dict):
    fig, ax = new_figure(width=5.6, height=3.8)
    seeds = data["seeds"]
    top = max(max(p[0] for p in points_of(s["frontier"][m])) for s in seeds
              for m in data["methods"])  # fmt: skip
    grid = np.linspace(0, top, GRID)
    for color, meth in zip(PALETTE, data["methods"], strict=False):
        pts = [p for s in seeds for p in points_of(s["frontier"][meth])]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=6, alpha=0.35, color=color)
        env = np.array([_measured(points_of(s["frontier"][meth]), grid) for s in seeds])
        ax.plot(grid, env.mean(0), color=color, label=meth)  # where every seed was measured
    title = "Reward–KL frontier (points: every β and step; line: envelope, seed mean)"
    ax.set(xlabel="KL(policy ‖ reference), nats per completion", ylabel="true reward", title=title)
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    return styled(fig)


def _measured(points: list[tuple[float, float]], grid: np.ndarray) -> np.ndarray:
    env = envelope(points, grid)
    return np.where(grid <= max(p[0] for p in points), env, np.nan)


def _deterministic(data: dict):
    fig, ax = new_figure(width=5.2)
    for color, meth in zip(PALETTE[1:], data["det_methods"], strict=False):
        for i, s in enumerate(data["seeds"]):
            t = s["deterministic"][meth]
            ax.plot([r["step"] for r in t], [r["kl"] for r in t], "o-", ms=2.5, color=color,
                    alpha=0.8, label=meth if i == 0 else None)  # fmt: skip
    ax.set(xlabel="step", ylabel="KL(policy ‖ reference)",
           title=f"Deterministic preferences, β = {data['det_beta']:g}")  # fmt: skip
    ax.legend(fontsize=7)
    return styled(fig)


def _calibration(data: dict):
    names = ["base", *data["methods"]]
    fig, axes = new_figure(ncols=len(names), width=2.6, height=2.8)
    axes = np.atleast_1d(axes)
    for ax, name, color in zip(axes, names, ["#444", *PALETTE], strict=False):
        for s in data["seeds"]:
            b = s["calibration"][name]["bins"]
            conf = np.array([np.nan if c is None else c for c in b["confidence"]])
            acc = np.array([np.nan if a is None else a for a in b["accuracy"]])
            ax.plot(conf, acc, "o-", ms=2.5, color=color, alpha=0.7)
        ax.plot([0, 1], [0, 1], ls="--", color="#999", lw=0.8)
        eces = [s["calibration"][name]["ece"] for s in data["seeds"]]
        ax.set(xlabel="confidence", title=f"{name}: ECE {np.mean(eces):.3f}", xlim=(0, 1),
               ylim=(0, 1))  # fmt: skip
        ax.title.set_fontsize(8)
    axes[0].set_ylabel("accuracy")
    return styled(fig)


def _shift(data: dict):
    fig, ax = new_figure(width=5.2)
    for color, meth in zip(PALETTE, data["methods"], strict=False):
        rows = np.array([s["token_shift"][meth]["changed_by_position"] for s in data["seeds"]])
        ax.plot(np.arange(1, rows.shape[1] + 1), rows.mean(0), "o-", ms=3, color=color,
                label=meth)  # fmt: skip
    title = f"Where the top-1 token changed (β = {data['beta_main']})"
    ax.set(xlabel="completion position", ylabel="fraction with top-1 ≠ base top-1", ylim=(0, 1))
    ax.set_title(title)
    ax.legend(fontsize=7)
    return styled(fig)
