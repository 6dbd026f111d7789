"""Figures of an ``icl`` run, read from its run directory (never from training)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fmlab.report.figures import PALETTE, new_figure, plot_curves, styled
from fmlab.store import RunData

LABELS = {
    "transformer": "transformer",
    "least_squares": "least squares",
    "knn": "3-nearest neighbours",
    "averaging": "averaging",
    "gd": "gradient descent (10 steps)",
    "ridge": "ridge (α = σ², Bayes-optimal)",
    "lasso": "Lasso (best α)",
    "zero": "zero",
}
COLORS = dict(
    zip(
        ("transformer", "least_squares", "knn", "averaging", "gd", "ridge", "lasso", "zero"),
        PALETTE,
        strict=False,
    )
)


def _plot_methods(
    ax, block: dict[str, Any], *, logy: bool = False, no_band: tuple[str, ...] = ()
) -> None:
    """One line per learner with its 95 % CI band; a dotted line at k = d."""
    for name, points in block["methods"].items():
        k = np.array([p["k"] for p in points])
        est = np.array([p["estimate"] for p in points])
        lo, hi = (np.array([p[key] for p in points]) for key in ("low", "high"))
        # errors are >= 0 (a t-interval can reach below); exact least squares (~1e-13) would
        # crush a log axis
        floor = 1e-8 if logy else 0.0
        color = COLORS.get(name, "#333333")
        ax.plot(
            k,
            np.maximum(est, floor),
            "o-",
            ms=3,
            lw=1.6 if name == "transformer" else 1.1,
            color=color,
            label=LABELS.get(name, name),
        )
        if name not in no_band:
            ax.fill_between(
                k, np.maximum(lo, floor), np.maximum(hi, floor), color=color, alpha=0.15
            )
    ax.axvline(block["d"], color="#888888", ls=":", lw=1)
    ax.set_xlabel("in-context examples k")
    if logy:
        ax.set_yscale("log")
    ax.legend()


def training_figure(m: pd.DataFrame) -> Figure:
    """Training loss and held-out error (mean over k, and at k = 2d) per function class."""
    classes = sorted(m["function_class"].dropna().unique()) if "function_class" in m else [None]
    fig, axes = new_figure(ncols=2)
    names = [n for n in ("eval_err_mean", "eval_err_at_2d") if n in set(m["name"])]
    for i, fc in enumerate(classes):
        where = {"function_class": fc} if fc is not None else {}
        colors = PALETTE[2 * i : 2 * i + 2]
        plot_curves(
            axes[0], m, ["loss"], where=where, colors=colors, logy=True, labels={"loss": f"{fc}"}
        )
        labels = {"eval_err_mean": f"mean over k, {fc}", "eval_err_at_2d": f"k = 2d, {fc}"}
        plot_curves(axes[1], m, names, where=where, logy=True, colors=colors, labels=labels)
    axes[0].set(ylabel="squared error", title="Training loss (squared error)")
    axes[1].set(ylabel="normalized error", title="Held-out error during training")
    return styled(fig)


def figures(run: RunData) -> dict[str, object]:
    out: dict[str, object] = {}
    path = run.artifacts / "curves.json"
    curves = json.loads(path.read_text()) if path.exists() else {}
    if "linear" in curves:
        fig, ax = new_figure(width=6.0, height=3.8)
        _plot_methods(ax, curves["linear"])
        ax.set(
            ylabel="normalized squared error (mean)",
            title=f"Linear functions, d = {curves['linear']['d']} (95% CI over prompts)",
        )
        out["error_vs_examples"] = styled(fig)
    if "noisy" in curves:
        fig, ax = new_figure(width=6.0, height=3.8)
        d = curves["noisy"]["d"]
        ax.axvspan(
            d - 1,
            d + 1,
            color="#bbbbbb",
            alpha=0.25,
            lw=0,
            label="least squares: no finite mean error",
        )
        _plot_methods(ax, curves["noisy"], logy=True, no_band=("least_squares",))
        ax.set(
            ylabel="normalized squared error (mean)",
            title=f"Noisy outputs (σ = {curves['noisy']['sigma']:g}): least squares peaks at k = d",
        )
        out["noisy_double_descent"] = styled(fig)
    if "sparse" in curves:
        block = curves["sparse"]
        fig, ax = new_figure(width=6.0, height=3.8)
        _plot_methods(ax, block)
        ax.set(
            ylabel="normalized squared error (mean)",
            title=f"Sparse linear functions ({block['sparsity']} of d = {block['d']})",
        )
        out["sparse_error_vs_examples"] = styled(fig)
    if "eval_err_mean" in set(run.metrics["name"]):
        out["training"] = training_figure(run.metrics)
    return out
