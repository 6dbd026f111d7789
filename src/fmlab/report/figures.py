"""Figure helpers shared by the studies: one look, publication-ready, headless.

Studies build matplotlib figures from a run's long metrics table with these helpers;
:mod:`fmlab.report.html` saves them as PNG and SVG and embeds them in the report.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on servers and in CI

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.frameon": False,
    "legend.fontsize": 8,
}


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 5.2, height: float = 3.4):
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows))
    return fig, axes


def styled(fig: Figure) -> Figure:
    fig.tight_layout()
    return fig


def plot_curves(
    ax,
    metrics: pd.DataFrame,
    names: Sequence[str],
    *,
    group: str | None = "seed",
    where: Mapping[str, object] | None = None,
    labels: Mapping[str, str] | None = None,
    logx: bool = True,
    logy: bool = False,
    colors: Sequence[str] = PALETTE,
) -> None:
    """One colour per metric name; one thin line per ``group`` value (e.g. seed).

    With ``logx`` the step axis is symmetric-log so that step 0 (initialisation) stays
    on the plot.
    """
    frame = metrics
    for key, value in (where or {}).items():
        frame = frame[frame[key] == value]
    for color, name in zip(colors, names, strict=False):
        rows = frame[frame["name"] == name]
        groups = rows.groupby(group) if group and group in rows else [(None, rows)]
        for i, (_, g) in enumerate(groups):
            g = g.sort_values("step")
            label = (labels or {}).get(name, name) if i == 0 else None
            ax.plot(g["step"], g["value"], color=color, lw=1.3, alpha=0.85, label=label)
    if logx:
        ax.set_xscale("symlog", linthresh=10)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    if names:
        ax.legend()


def save_figure(fig: Figure, directory: Path, name: str) -> dict[str, Path]:
    """Write ``name.png`` and ``name.svg``; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for ext in ("png", "svg"):
        paths[ext] = directory / f"{name}.{ext}"
        fig.savefig(paths[ext], bbox_inches="tight")
    return paths


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def close(fig: Figure) -> None:
    plt.close(fig)
