"""Figures of a ``watermark`` run, read from ``artifacts/watermark.json`` (never from
generation): detection against length, Theorem 4.2 per entropy bin, robustness to
attacks, the quality cost, and null z-scores against N(0, 1)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from scipy import stats

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.store import RunData


def figures(run: RunData) -> dict[str, object]:
    path = run.artifacts / "watermark.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    seeds = data["seeds"]
    return {
        "detection_vs_length": _detection(seeds),
        "green_fraction_vs_bound": _bins(data["bins"], data["gamma"]),
        "robustness": _robustness(seeds),
        "quality_cost": _quality(seeds),
        "null_z": _null(seeds),
    }


def _mean_over_seeds(tables: list[dict[str, Any]], stat: str) -> tuple[np.ndarray, np.ndarray]:
    levels = sorted(tables[0], key=float)
    values = np.array([[t[x][stat] for x in levels] for t in tables])
    return np.array([float(x) for x in levels]), values.mean(0)


def _detection(seeds: list[dict]):
    fig, (ax_z, ax_t) = new_figure(ncols=2, width=4.6)
    for color, arm in zip(PALETTE, seeds[0]["curves"], strict=False):
        tables = [s["curves"][arm] for s in seeds]
        T, z = _mean_over_seeds(tables, "z_mean")
        _, tpr = _mean_over_seeds(tables, "tpr_z4" if arm.startswith("kgw") else "tpr_p")
        ax_z.plot(T, z, "o-", color=color, label=arm, ms=3)
        ax_t.plot(T, tpr, "o-", color=color, label=arm, ms=3)
    ax_z.axhline(4, color="#444", ls="--", lw=0.8)
    ax_z.set(xscale="log", xlabel="tokens scored T", ylabel="mean z", title="z-score vs T")
    ax_t.set(xscale="log", xlabel="tokens scored T", ylabel="detection rate", ylim=(-0.02, 1.02))
    ax_t.set_title("KGW: z >= 4; others: exact p <= 3.2e-5", fontsize=9)
    ax_z.legend()
    return styled(fig)


def _bins(rows: list[dict], gamma: float):
    fig, ax = new_figure(width=5.6)
    x = [r["spike_mean"] for r in rows]
    err = [1.96 * r["gap_se"] for r in rows]
    ax.errorbar(
        x,
        [r["green"] for r in rows],
        yerr=err,
        fmt="o",
        color=PALETTE[0],
        ms=4,
        label="measured green fraction (95% CI)",
    )
    ax.plot(x, [r["p_green"] for r in rows], "x", color=PALETTE[1], label="exact P(green) per step")
    ax.plot(x, [r["bound"] for r in rows], "s--", color=PALETTE[3], ms=3, label="Thm 4.2 bound")
    ax.axhline(gamma, color="#888", lw=0.8, ls=":", label="γ (no watermark)")
    ax.set(xlabel="spike entropy of the model's next-token law (bin mean)", ylabel="green fraction")
    ax.set_title("Main KGW arm: green fraction per spike-entropy bin", fontsize=10)
    ax.legend()
    return styled(fig)


def _robustness(seeds: list[dict]):
    fig, (ax_s, ax_p) = new_figure(ncols=2, width=4.6)
    for color, arm in zip(PALETTE, seeds[0]["attacks"], strict=False):
        rule = "tpr_z4" if arm.startswith("kgw") else "tpr_p"
        for ax, kind in ((ax_s, "substitution"), (ax_p, "spans")):
            x, tpr = _mean_over_seeds([s["attacks"][arm][kind] for s in seeds], rule)
            ax.plot(100 * x, tpr, "o-", color=color, ms=3, label=arm)
    ax_s.set(xlabel="tokens replaced at random (%)", ylabel="detection rate", ylim=(-0.02, 1.02))
    ax_p.set(xlabel="tokens re-sampled in spans (%)", ylim=(-0.02, 1.02))
    ax_s.set_title("Random substitution", fontsize=10)
    ax_p.set_title("Span re-sampling (unwatermarked model)", fontsize=10)
    ax_s.legend()
    return styled(fig)


def _quality(seeds: list[dict]):
    fig, (ax_kl, ax_ce) = new_figure(ncols=2, width=4.6)
    arms = [a for a in seeds[0]["quality"] if "kl" in seeds[0]["quality"][a]]
    kl = np.array([[s["quality"][a]["kl"] for a in arms] for s in seeds])
    ax_kl.bar(range(len(arms)), kl.mean(0), yerr=kl.std(0), color=PALETTE[0])
    ax_kl.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
    ax_kl.set(ylabel="KL(watermarked ‖ model) per token (nats)", title="Exact cost per step")
    if "ce_true_sampled" in seeds[0]["quality"].get("none", {}):
        names = list(seeds[0]["quality"])
        ce = np.array([[s["quality"][a]["ce_true_sampled"] for a in names] for s in seeds])
        ax_ce.bar(range(len(names)), ce.mean(0), yerr=ce.std(0), color=PALETTE[2])
        ax_ce.set_xticks(range(len(names)), names, rotation=30, ha="right")
        low = ce.min() - 0.05
        ax_ce.set(ylim=(max(0.0, low), ce.max() + 0.05), ylabel="-log q_true(x) per token")
        ax_ce.set_title("Cross-entropy under the true language", fontsize=10)
    return styled(fig)


def _null(seeds: list[dict]):
    fig, ax = new_figure(width=5.6)
    edges = np.arange(-6.0, 8.01, 0.25)
    mids = (edges[:-1] + edges[1:]) / 2
    for color, (source, det) in zip(
        PALETTE, [("model", "kgw"), ("model", "kgw_raw"), ("model", "gumbel")], strict=False
    ):
        if det not in seeds[0]["null"].get(source, {}):
            continue
        hist = np.sum([s["null"][source][det]["z_hist"] for s in seeds], axis=0)
        density = hist / max(1, hist.sum()) / 0.25
        ax.plot(mids, np.maximum(density, 1e-12), color=color, lw=1.2, label=f"{det} on {source}")
    ax.plot(mids, stats.norm.pdf(mids), color="#444", ls="--", lw=0.8, label="N(0, 1)")
    ax.axvline(4, color="#444", lw=0.8)
    ax.set(yscale="log", ylim=(1e-8, 1), xlabel="z on unwatermarked text", ylabel="density")
    ax.set_title("Null z-scores (every text × many keys)", fontsize=10)
    ax.legend()
    return styled(fig)
