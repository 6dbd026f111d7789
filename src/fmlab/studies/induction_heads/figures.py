"""Figures of an ``induction-heads`` run, read from its run directory (never from training)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.store import RunData


def _load(run: RunData, name: str) -> Any:
    path = run.artifacts / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _curves(ax, m, name: str, models: list[dict], ylabel: str) -> None:
    """One colour per depth, one line per seed; the 2-layer changepoints and windows."""
    rows = m[m["name"] == name]
    for color, (depth, group) in zip(PALETTE, rows.groupby("n_layers"), strict=False):
        for i, (_, g) in enumerate(group.groupby("seed")):
            g = g.sort_values("step")
            label = f"{int(depth)} layer{'s' if depth > 1 else ''}" if i == 0 else None
            ax.plot(g["step"], g["value"], color=color, lw=1.2, alpha=0.85, label=label)
    for info in models:
        if info["n_layers"] < 2:
            continue
        if info.get("window_start") is not None:
            ax.axvspan(info["window_start"], info["window_end"], color="#999999", alpha=0.12)
        if info.get("phase_change_step") is not None:
            ax.axvline(info["phase_change_step"], color="#444444", ls="--", lw=0.8)
    ax.set(xlabel="step", ylabel=ylabel)
    ax.legend()


def _heatmap(ax, fig, example: dict, title: str) -> None:
    pattern = np.asarray(example["pattern"])  # (T, T), query x key
    im = ax.imshow(pattern, cmap="viridis", vmin=0, vmax=max(pattern.max(), 1e-6))
    src, dst, n = example["src"], example["dst"], example["length"]
    for start, color, label in ((src, "#ff7f0e", "segment"), (dst, "#d62728", "its copy")):
        ax.axhspan(start - 0.5, start + n - 0.5, xmin=0, xmax=0.02, color=color, label=label)
        ax.axvspan(start - 0.5, start + n - 0.5, ymin=0.98, ymax=1.0, color=color)
    q = np.arange(dst, dst + n - 1)  # where an induction head should look
    ax.plot(
        q - dst + src + 1,
        q,
        "o",
        mfc="none",
        mec="white",
        ms=4,
        mew=0.5,
        alpha=0.7,
        label="token after previous occurrence",
    )  # hollow: the cell stays visible
    ax.set(xlabel="key position", ylabel="query position", title=title)
    ax.grid(False)
    legend = ax.legend(loc="upper right", fontsize=7)  # the causal mask leaves that corner empty
    legend.legend_handles[-1].set_markeredgecolor("#333333")  # white on the map, dark in the key
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def figures(run: RunData) -> dict[str, object]:
    out: dict[str, object] = {}
    models = _load(run, "models") or []
    m = run.metrics
    if "n_layers" in m and "prefix_max" in set(m["name"]):
        fig, axes = new_figure(ncols=3, width=4.6)
        _curves(axes[0], m, "loss_repeated", models, "loss on repeated tokens (nats)")
        _curves(axes[1], m, "icl_score", models, "ICL score (late − early loss)")
        _curves(axes[2], m, "prefix_max", models, "best prefix-matching score")
        axes[2].axhline(0.5, color="#2ca02c", ls=":", lw=1)
        axes[0].set_title("Loss on the repeated segment")
        axes[1].set_title("In-context learning score")
        axes[2].set_title("Induction head (prefix matching)")
        out["phase_change"] = styled(fig)
    examples = [
        (depth, _load(run, f"attention_{depth}L_seed{seed}"))
        for depth in (2, 1)
        for seed in (run.config.get("seeds") or [0])[:1]
    ]
    examples = [(d, e) for d, e in examples if e is not None]
    if examples:
        fig, axes = new_figure(ncols=len(examples), width=5.0, height=4.4)
        axes = np.atleast_1d(axes)
        for ax, (depth, ex) in zip(axes, examples, strict=True):
            title = (
                f"{depth}-layer model: layer {ex['layer']} head {ex['head']} "
                f"(prefix score {ex['prefix_score']:.2f})"
            )
            _heatmap(ax, fig, ex, title)
        out["induction_head_attention"] = styled(fig)
    if models:
        fig, ax = new_figure(width=7.0)
        labels, values, colors = [], [], []
        for info in models:
            for layer, heads in enumerate(info["prefix_by_head"]):
                for head, value in enumerate(heads):
                    labels.append(f"{info['n_layers']}L s{info['seed']}\nl{layer}h{head}")
                    values.append(value)
                    colors.append(PALETTE[min(info["n_layers"] - 1, len(PALETTE) - 1)])
        ax.bar(np.arange(len(values)), values, color=colors)
        ax.axhline(0.5, color="#2ca02c", ls=":", lw=1, label="0.5: induction head")
        ax.axhline(0.2, color="#7f7f7f", ls=":", lw=1, label="0.2: 1-layer ceiling")
        ax.set_xticks(np.arange(len(values)), labels, fontsize=5, rotation=90)
        ax.set(ylabel="prefix-matching score", title="Every head at the end of training")
        ax.legend()
        out["prefix_scores_by_head"] = styled(fig)
    return out
