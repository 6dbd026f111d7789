"""Figures of an ``unlearning`` run, read from ``artifacts/unlearning.json``: the
forget-quality/utility trade-off per split, both against unlearning steps, membership
inference, and the relearning attack."""

from __future__ import annotations

import json
import math

import numpy as np

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.store import RunData


def figures(run: RunData) -> dict[str, object]:
    path = run.artifacts / "unlearning.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("user"):
        return {"forget_vs_steps": _user(data)}
    splits = data["splits"]
    big = max(splits, key=lambda t: float(t[1:]))
    return {
        "tradeoff": _tradeoff(splits, data["methods"], data["fq_level"]),
        "steps": _steps(splits[big], data["methods"], data["fq_level"], big),
        "mia": _mia(splits[big], data["methods"]),
        "relearning": _relearn(splits[big], data["methods"]),
    }


def _mean_rows(seeds: list[dict], method: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [s["trajectories"][method] for s in seeds]
    steps = np.array([r["step"] for r in rows[0]])
    return steps, np.array([[r[key] for r in rr] for rr in rows]).mean(0)


def _tradeoff(splits: dict, methods: list[str], level: float):
    tags = sorted(splits, key=lambda t: float(t[1:]))
    fig, axes = new_figure(ncols=len(tags), width=4.2)
    axes = np.atleast_1d(axes)
    for ax, t in zip(axes, tags, strict=True):
        seeds = splits[t]
        for color, meth in zip(PALETTE, methods, strict=False):
            _, u = _mean_rows(seeds, meth, "utility")
            _, q = _mean_rows(seeds, meth, "log10_fq")
            ax.plot(u, q, "o-", ms=2.5, color=color, label=meth)
        ret_u = np.mean([s["retrain"]["utility"] for s in seeds])
        ax.plot([ret_u], [0.0], "*", ms=11, color="#222", label="retrained")
        _, u0 = _mean_rows(seeds, methods[0], "utility")
        _, q0 = _mean_rows(seeds, methods[0], "log10_fq")
        ax.plot([u0[0]], [q0[0]], "s", ms=7, color="#777", label="target")
        ax.axhline(math.log10(level), color="#444", ls="--", lw=0.8)
        ax.set(xlabel="model utility", ylabel="log10 forget quality", title=f"forget {t[1:]} %")
    axes[0].legend(fontsize=7)
    return styled(fig)


def _steps(seeds: list[dict], methods: list[str], level: float, t: str):
    fig, (ax_q, ax_u) = new_figure(ncols=2, width=4.6)
    for color, meth in zip(PALETTE, methods, strict=False):
        steps, q = _mean_rows(seeds, meth, "log10_fq")
        _, u = _mean_rows(seeds, meth, "utility")
        ax_q.plot(steps, q, "o-", ms=2.5, color=color, label=meth)
        ax_u.plot(steps, u, "o-", ms=2.5, color=color, label=meth)
    ax_q.axhline(math.log10(level), color="#444", ls="--", lw=0.8)
    ax_u.axhline(
        np.mean([s["retrain"]["utility"] for s in seeds]), color="#222", ls=":", label="retrained"
    )
    ax_q.set(xlabel="unlearning step", ylabel="log10 forget quality", title=f"forget {t[1:]} %")
    ax_u.set(xlabel="unlearning step", ylabel="model utility")
    ax_u.legend(fontsize=7)
    return styled(fig)


def _mia(seeds: list[dict], methods: list[str]):
    fig, ax = new_figure(width=6.4)
    names = ["target", "retrain", *methods]
    attacks = ["mia_loss", "mia_min_k", "mia_zlib"]
    x = np.arange(len(names))
    for i, (color, attack) in enumerate(zip(PALETTE, attacks, strict=False)):
        vals = np.array([[s["mia"][n][attack] for n in names] for s in seeds])
        ax.bar(
            x + (i - 1) * 0.27, vals.mean(0), 0.27, yerr=vals.std(0), color=color, label=attack[4:]
        )
    ax.axhline(0.5, color="#444", ls="--", lw=0.8)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(ylabel="AUC (forget vs held-out)", ylim=(0, 1.02), title="Membership inference")
    ax.legend(fontsize=7)
    return styled(fig)


def _relearn(seeds: list[dict], methods: list[str]):
    fig, ax = new_figure(width=6.4)
    names = ["retrain", *methods]
    x = np.arange(len(names))
    for i, (color, when) in enumerate(zip(PALETTE, ("before", "after"), strict=False)):
        vals = np.array([[s["relearn"][n][f"acc_{when}"] for n in names] for s in seeds])
        ax.bar(
            x + (i - 0.5) * 0.4,
            vals.mean(0),
            0.4,
            yerr=vals.std(0),
            color=color,
            label=f"{when} the attack",
        )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(
        ylabel="option accuracy on the other forget facts",
        ylim=(0, 1.02),
        title="Relearning attack on 10% of the forget set",
    )
    ax.legend(fontsize=7)
    return styled(fig)


def _user(data: dict):
    fig, ax = new_figure(width=5.6)
    for color, (meth, rows) in zip(PALETTE, data["trajectories"].items(), strict=False):
        ax.plot(
            [r["step"] for r in rows],
            [r["forget_prob"] for r in rows],
            "o-",
            ms=2.5,
            color=color,
            label=meth,
        )
    ax.set(xlabel="unlearning step", ylabel="forget answer probability", title="Forgetting")
    ax.legend(fontsize=7)
    return styled(fig)
