"""Figures of a ``representations`` run, read from its run directory."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fmlab.report.figures import PALETTE, new_figure, plot_curves, styled
from fmlab.stats import t_interval
from fmlab.stats.bounds import interval_bounds
from fmlab.store import RunData

LABELS = {
    "full": "full fine-tune (shifted language)",
    "last_layer": "last block only (shifted)",
    "control": "control: continued pre-training",
}


def _per_layer(ax, m: pd.DataFrame, name: str, ylabel: str) -> None:
    """Mean over seeds with its 95 % t-interval, one line per variant, against layer."""
    rows = m[(m["name"] == name) & m["variant"].notna()]
    for color, (variant, label) in zip(PALETTE, LABELS.items(), strict=False):
        v = rows[rows["variant"] == variant]
        if v.empty:
            continue
        steps = sorted(v["step"].unique())
        values = [v[v["step"] == s]["value"].to_numpy() for s in steps]
        cis = [t_interval(x, bounds=interval_bounds(name, x.tolist())) for x in values]
        mean = np.array([c.estimate for c in cis])
        ax.plot(steps, mean, marker="o", color=color, label=label)
        low, high = np.array([c.low for c in cis]), np.array([c.high for c in cis])
        if np.all(np.isfinite(low)):
            ax.fill_between(steps, low, high, color=color, alpha=0.15, lw=0)
        ticks = v.drop_duplicates("step").sort_values("step")
    ax.set_xticks(ticks["step"], ticks["layer"])
    ax.set(xlabel="layer", ylabel=ylabel)
    ax.legend()


def figures(run: RunData) -> dict[str, object]:
    m = run.metrics
    out: dict[str, object] = {}
    if "variant" not in m:
        return out
    fig, ax = new_figure(width=6.2)
    _per_layer(ax, m, "cka", "CKA(pre-trained, fine-tuned)")
    ax.set_title("How much each layer's representation changed (mean, 95% CI over seeds)")
    out["cka_by_layer"] = styled(fig)

    fig, axes = new_figure(ncols=2, width=5.0)
    _per_layer(axes[0], m, "dW_rel_norm", "‖ΔW‖ / ‖W‖")
    axes[0].set_title("Size of the weight update")
    _per_layer(axes[1], m, "dW_eff_rank_frac", "effective rank of ΔW / max rank")
    axes[1].set_title("Effective rank of the weight update")
    out["weight_updates"] = styled(fig)

    fig, ax = new_figure(width=6.2)
    curves = m[m["phase"].notna()].copy() if "phase" in m else m.iloc[:0]
    # fine-tuning continues where pre-training stopped
    curves.loc[curves["phase"] != "pretrain", "step"] += run.config["pretrain"]["steps"]
    phases = [p for p in ("pretrain", *LABELS) if (curves["phase"] == p).any()]
    for color, phase in zip(PALETTE, phases, strict=False):
        plot_curves(
            ax, curves, ["eval_loss"], where={"phase": phase}, colors=[color], logx=False,
            labels={"eval_loss": LABELS.get(phase, "pre-training (own language)")},
        )  # fmt: skip
    summary = (run.summary or {}).get("metrics", {})
    if summary.get("shifted_optimal_loss") is not None:
        optimal = summary["shifted_optimal_loss"]
        ax.axhline(optimal, color="#888", ls="--", lw=1, label="optimal (shifted)")
    ax.legend()
    ax.set(ylabel="held-out loss", title="Pre-training (own language) then fine-tuning (shifted)")
    out["losses"] = styled(fig)
    return out
