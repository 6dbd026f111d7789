"""Figures of an ``intrinsic-dim`` run: accuracy against subspace dimension d for each
pretraining checkpoint (the d90 search), and d90 against pretraining steps."""

from __future__ import annotations

import json

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.store import RunData


def figures(run: RunData) -> dict[str, object]:
    out: dict[str, object] = {}
    path = run.artifacts / "search.json"
    if not path.exists():
        return out
    seeds = json.loads(path.read_text())
    steps = sorted(int(c) for c in seeds[0])
    fig, ax = new_figure(width=6.0)
    for color, step in zip(PALETTE, steps, strict=False):
        for i, r in enumerate(seeds):
            res = r[str(step)]
            ds = sorted(int(d) for d in res["tried"])
            full = res["full_acc"]
            ax.plot(ds, [res["tried"][str(d)] / full for d in ds], "o-", color=color, alpha=0.7,
                    label=f"pretrained {step} steps" if i == 0 else None)  # fmt: skip
    threshold = run.config.get("threshold", 0.9)
    ax.axhline(threshold, color="#888", ls="--", lw=1, label=f"{threshold:g} × full FT")
    ax.set(xscale="log", xlabel="subspace dimension d", ylabel="accuracy / full fine-tuning's")
    ax.set_title("Training in a random d-dimensional subspace (each seed)")
    ax.legend(fontsize=7)
    out["d90_search"] = styled(fig)

    fig, ax = new_figure(width=5.2)
    summary = (run.summary or {}).get("metrics", {})
    xs, ys, lo, hi = [], [], [], []
    for step in steps:
        mean = summary.get(f"d90_step{step}")
        if mean is None:
            continue
        xs.append(max(step, 1))
        ys.append(mean)
        lo.append(mean - (summary.get(f"d90_step{step}_ci_low") or mean))
        hi.append((summary.get(f"d90_step{step}_ci_high") or mean) - mean)
    if xs:
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color=PALETTE[0], capsize=3)
    threshold = run.config.get("threshold", 0.9)
    for r in seeds:  # each seed: its d90, or ^ at the bound it never reached
        for step in steps:
            res = r[str(step)]
            missed = [int(d) for d, a in res["tried"].items() if a < threshold * res["full_acc"]]
            x = max(step, 1)
            if res["d90"] is not None:
                ax.plot([x], [res["d90"]], ".", color="#555", alpha=0.6, label="each seed")
            elif missed:
                ax.plot([x], [max(missed)], "^", color="#c44", alpha=0.8,
                        label="not reached: d90 > largest d tried")  # fmt: skip
    ax.set_xticks([max(s, 1) for s in steps], ["init" if s == 0 else str(s) for s in steps])
    n = summary.get("n_params")
    if n:
        ax.axhline(n, color="#888", ls=":", lw=1, label=f"parameters D = {n:,}")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="pretraining steps", ylabel="d90 (geometric mean)")
    ax.set_title("d90 along pretraining (95% CI over seeds)")
    out["d90_curve"] = styled(fig)
    return out
