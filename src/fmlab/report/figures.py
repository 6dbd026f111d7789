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


def keep_legends_off_data(fig: Figure) -> Figure:
    """Move every legend that covers data (a line, a marker, a bar, a shaded CI band) out
    of its axes: to their right when nothing is drawn there, else below them (a panel with
    a neighbour or a colour bar to its right). The figure grows by the legend, so the axes
    keep their size. Legends in free space stay where the study put them. Called on every
    figure a report draws, before it is saved."""
    import numpy as np

    wider = taller = 0.0  # inches the moved legends need
    renderer = fig.canvas.get_renderer()
    for ax in list(fig.axes):
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent(renderer).padded(2)
        if not (
            any(box.contains(x, y) for x, y in _data_points(ax, np)) or _on_a_band(ax, box, np)
        ):
            continue
        handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
        title = legend.get_title().get_text() or None
        legend.remove()
        frame = ax.get_window_extent(renderer)
        if _free_on_the_right(fig, ax, frame, renderer):
            ax.legend(handles, labels, title=title, loc="upper left",
                      bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)  # fmt: skip
            wider = max(wider, box.width / fig.dpi + 0.15)
        else:  # below the tick labels and the axis label
            below = ax.get_tightbbox(renderer)
            y = (below.y0 - frame.y0) / frame.height - 0.02
            for ncol in range(min(3, len(labels)), 0, -1):  # as wide as the axes, at most
                where = {"loc": "upper center", "bbox_to_anchor": (0.5, y), "borderaxespad": 0}
                placed = ax.legend(handles, labels, title=title, ncol=ncol, **where)
                if placed.get_window_extent(renderer).width <= frame.width * 1.05:
                    break
            rows = -(-len(labels) // ncol)
            taller = max(taller, box.height / fig.dpi * rows / max(len(labels), 1) + 0.2)
    if wider or taller:
        width, height = fig.get_size_inches()
        fig.set_size_inches(width + min(wider, width), height + min(taller, height))
        import warnings

        with warnings.catch_warnings():  # colour bars: "not compatible with tight_layout"
            warnings.simplefilter("ignore", UserWarning)
            fig.tight_layout()
    return fig


def _free_on_the_right(fig: Figure, ax, frame, renderer) -> bool:
    """Whether no other axes (a panel, a colour bar) sits to the right of ``ax``."""
    for other in fig.axes:
        if other is ax or not other.get_visible():
            continue
        b = other.get_window_extent(renderer)
        if b.x0 >= frame.x1 - 1 and b.y0 < frame.y1 and b.y1 > frame.y0:
            return False
    return True


def _data_points(ax, np):
    """Display coordinates of the data drawn on ``ax`` (sampled: at most ~2,000 per artist)."""
    for line in ax.get_lines():
        xy = np.column_stack(line.get_data(orig=False)).astype(float, copy=False)
        shown = line.get_transform().transform(xy)
        if line.get_linestyle() not in ("None", "none", "", " ") and 1 < len(shown) < 500:
            t = np.linspace(0, 1, 9)[:-1, None, None]  # points along each segment too
            along = (shown[:-1] + t * (shown[1:] - shown[:-1])).reshape(-1, 2)
            shown = np.vstack([along, shown[-1:]])
        yield from _visible(ax, shown, np)
    from matplotlib.collections import PathCollection

    for coll in ax.collections:
        if isinstance(coll, PathCollection):  # scatter markers
            offsets = np.asarray(coll.get_offsets(), dtype=float)
            if len(offsets):
                yield from _visible(ax, coll.get_offset_transform().transform(offsets), np)
    for patch in ax.patches:
        bb = patch.get_window_extent()
        yield from _visible(ax, np.array([[bb.x0, bb.y1], [bb.x1, bb.y1], [bb.x0, bb.y0],
                                          [bb.x1, bb.y0]]), np)  # fmt: skip


def _on_a_band(ax, box, np) -> bool:
    """Whether the legend's box lies on a shaded band (a CI from ``fill_between``): one of
    its corners or its centre inside the band, or the band's outline through it."""
    from matplotlib.collections import PathCollection

    probes = [(box.x0, box.y0), (box.x0, box.y1), (box.x1, box.y0), (box.x1, box.y1),
              ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)]  # fmt: skip
    for coll in ax.collections:
        if isinstance(coll, PathCollection) or coll.get_alpha() == 0:
            continue
        transform = coll.get_transform()
        for path in coll.get_paths():
            shown = transform.transform_path(path)
            if any(shown.contains_point(p) for p in probes):
                return True
            if any(box.contains(x, y) for x, y in _visible(ax, shown.vertices, np)):
                return True
    return False


def _visible(ax, points, np):
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) > 2000:
        points = points[:: len(points) // 2000 + 1]
    inside = ax.get_window_extent()
    return [(x, y) for x, y in points if inside.contains(x, y)]


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
