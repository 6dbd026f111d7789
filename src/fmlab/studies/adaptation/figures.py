"""Figures of an ``adaptation`` run, read from its run directory: ID vs OOD accuracy per
method, the learning-forgetting frontier, the spectra of full fine-tuning's ΔW, and
layer-wise CKA base vs adapted."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.stats import t_interval
from fmlab.store import RunData

METHODS = {"lp": "linear probe", "ft": "full FT", "lp_ft": "LP-FT", "last_layer": "last block",
           "lora": "LoRA"}  # fmt: skip


def _id_vs_ood(summary: dict, ax) -> None:
    for color, (key, label) in zip(PALETTE, METHODS.items(), strict=False):
        x, y = summary.get(f"{key}_id_acc"), summary.get(f"{key}_ood_acc")
        if x is None or y is None:
            continue
        xerr = [[x - (summary.get(f"{key}_id_acc_ci_low") or x)],
                [(summary.get(f"{key}_id_acc_ci_high") or x) - x]]  # fmt: skip
        yerr = [[y - (summary.get(f"{key}_ood_acc_ci_low") or y)],
                [(summary.get(f"{key}_ood_acc_ci_high") or y) - y]]  # fmt: skip
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", color=color, label=label, capsize=3)
    for split, ls in (("id", "--"), ("ood", ":")):
        bayes = summary.get(f"lp_{split}_bayes_acc")
        if bayes is not None:
            line = ax.axvline if split == "id" else ax.axhline
            line(bayes, color="#888", ls=ls, lw=1, label=f"Bayes ({split.upper()})")
    ax.set(xlabel="ID accuracy", ylabel="OOD accuracy")
    ax.set_title("Transfer task: ID vs OOD (mean, 95% CI over seeds)")
    ax.legend(fontsize=7)


def _frontier(m: pd.DataFrame, ax) -> None:
    rows = m[m["task"] == "domain_frontier"]
    for color, method in zip(PALETTE, ("ft", "lora"), strict=False):
        r = rows[rows["method"] == method]
        if r.empty:
            continue
        wide = r.pivot_table(index=["seed", "lr"], columns="name", values="value").reset_index()
        means = wide.groupby("lr")[["target_val_loss", "forgetting"]].mean()
        ax.plot(means["target_val_loss"], means["forgetting"], "o-", color=color,
                label={"ft": "full FT", "lora": "LoRA"}[method])  # fmt: skip
        for lr, p in means.iterrows():
            ax.annotate(f"{lr:g}", (p["target_val_loss"], p["forgetting"]), fontsize=7)
    ax.set(xlabel="target loss (shifted language, lower = learned more)",
           ylabel="source-loss increase (forgetting)")  # fmt: skip
    ax.set_title("Learning vs forgetting (mean over seeds; labels: lr)")
    ax.legend()


def _spectra(m: pd.DataFrame, axes, r: int) -> None:
    for ax, task in zip(axes, ("transfer", "domain"), strict=True):
        rows = m[m["task"] == f"{task}_sv"]
        if rows.empty:
            continue
        curves = []
        for _, g in rows.groupby(["seed", "matrix"]):
            s = g.sort_values("step")["value"].to_numpy() ** 2
            curves.append(np.cumsum(s) / s.sum())
        width = max(len(c) for c in curves)
        padded = np.array([np.pad(c, (0, width - len(c)), constant_values=1.0) for c in curves])
        k = np.arange(1, width + 1)
        ax.plot(k, padded.mean(0), color=PALETTE[0], label="full FT ΔW (mean over matrices)")
        ax.fill_between(k, padded.min(0), padded.max(0), color=PALETTE[0], alpha=0.15, lw=0)
        ax.axvline(r, color="#888", ls="--", lw=1, label=f"r = {r}")
        ax.set(xlabel="singular directions k", ylabel="share of ‖ΔW‖² in top k", xscale="log")
        ax.set_title(f"{task} task")
        ax.legend(fontsize=7)


def _cka(m: pd.DataFrame, axes) -> None:
    rows = m[m["task"] == "cka"]
    for ax, split in zip(axes, ("id", "ood"), strict=True):
        r = rows[rows["split"] == split]
        for color, method in zip(PALETTE, ("lp", "ft", "lp-ft", "last-layer", "lora"),
                                 strict=False):  # fmt: skip
            v = r[r["method"] == method]
            if v.empty:
                continue
            steps = sorted(v["step"].unique())
            cis = [t_interval(v[v["step"] == s]["value"].to_numpy()) for s in steps]
            ax.plot(steps, [c.estimate for c in cis], "o-", color=color,
                    label=METHODS[method.replace("-", "_")])  # fmt: skip
        if not r.empty:
            ticks = r.drop_duplicates("step").sort_values("step")
            ax.set_xticks(ticks["step"], ticks["layer"])
        ax.set(xlabel="layer", ylabel="CKA(base, adapted)", title=f"{split.upper()} inputs")
        ax.legend(fontsize=7)


def figures(run: RunData) -> dict[str, object]:
    m = run.metrics
    out: dict[str, object] = {}
    summary = (run.summary or {}).get("metrics", {})
    if summary:
        fig, ax = new_figure(width=5.6)
        _id_vs_ood(summary, ax)
        out["id_vs_ood"] = styled(fig)
    if "task" not in m:
        return out
    fig, ax = new_figure(width=5.6)
    _frontier(m, ax)
    out["forgetting_vs_learning"] = styled(fig)
    fig, axes = new_figure(ncols=2, width=4.6)
    _spectra(m, axes, int(run.config.get("energy_rank", 8)))
    out["dW_spectra"] = styled(fig)
    fig, axes = new_figure(ncols=2, width=4.6)
    _cka(m, axes)
    out["cka_by_layer"] = styled(fig)
    return out
