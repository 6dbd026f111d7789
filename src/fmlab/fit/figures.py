"""Plots of fitted scaling laws, and the log-space residual summaries shown with them.

Figures are plain matplotlib ``Figure`` objects in fmlab's shared style
(:mod:`fmlab.report.figures`), so the CLI (``fmlab fit``) and the scaling study draw the
same pictures: data against the fitted law, and the compute-optimal frontier it implies
(Hoffmann et al. 2022, figures 2-4). With more than ``MAX_PLOTTED`` runs, the scatter plots
show a uniform random ``MAX_PLOTTED`` of them (seed 0, noted on the axes); fitted curves,
ranges and parabolas still use every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fmlab.report.figures import PALETTE, new_figure, styled

#: Scatter plots show at most this many runs (a random subset): more only slow the figure.
MAX_PLOTTED = 5000


def _plotted(n: int) -> np.ndarray:
    """Positions of the runs a scatter shows: all, or a sorted uniform sample of MAX_PLOTTED."""
    if n <= MAX_PLOTTED:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, MAX_PLOTTED, replace=False))


def _note_sample(ax: Any, shown: int, n: int) -> None:
    if shown < n:
        ax.text(0.99, 0.01, f"{shown:,} of {n:,} runs shown (random)", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="#555555")  # fmt: skip


__all__ = [
    "chinchilla_figures",
    "isoflop_figures",
    "power_law_figure",
]


def _groups(values: np.ndarray, prefix: str, max_groups: int = 8) -> list[tuple]:
    """(representative, mask, colour, label) per group: each distinct value when there are
    few, else ``max_groups - 2`` log-spaced bins labelled by their geometric mean."""
    uniq = np.unique(values)
    if len(uniq) <= max_groups:
        bins = [(u, np.equal(values, u), f"{prefix} = {_fmt(u)}") for u in uniq]
    else:
        edges = np.geomspace(uniq[0], uniq[-1], max_groups - 1)
        idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
        bins = []
        for i in np.unique(idx):
            mask = idx == i
            rep = float(np.exp(np.log(values[mask]).mean()))
            bins.append((rep, mask, f"{prefix} ≈ {_fmt(rep)}"))
    return [(r, m, PALETTE[i % len(PALETTE)], lab) for i, (r, m, lab) in enumerate(bins)]


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def chinchilla_figures(
    params: Any,
    N: Any,
    D: Any,
    loss: Any,
    *,
    bootstrap: Any = None,
    true_E: float | None = None,
) -> dict[str, Figure]:
    """``fit``: data and the fitted law against D (one colour per N); ``frontier``: loss
    against compute ``C = 6ND`` with the law's compute-optimal frontier, and ``N_opt(C)``
    with its band over ``bootstrap`` (``ChinchillaFit.bootstrap_``, optional).

    ``params`` is a :class:`~fmlab.fit.ChinchillaParams` (``ChinchillaFit.params_``);
    ``true_E`` draws a known irreducible loss for comparison.
    """
    N, D, loss = (np.asarray(v, float) for v in (N, D, loss))
    p = params
    d_grid = np.geomspace(D.min() / 1.5, D.max() * 1.5, 200)
    C = 6 * N * D
    c_grid = np.geomspace(C.min(), C.max() * 10, 200)
    n_all, shown = len(N), _plotted(len(N))
    N, D, loss, C = N[shown], D[shown], loss[shown], C[shown]
    groups = _groups(N, "N")
    fig, ax = new_figure(width=6.0, height=4.0)
    for n, sel, color, label in groups:
        ax.scatter(D[sel], loss[sel], color=color, s=18, zorder=3, label=label)
        ax.plot(d_grid, p.predict(n, d_grid), color=color, lw=1.2, alpha=0.8)
    ax.axhline(p.E, color="#555555", ls="--", lw=1, label=f"fitted E = {p.E:.4g}")
    if true_E is not None:
        ax.axhline(true_E, color="#000000", ls=":", lw=1.2, label=f"true E = {true_E:.4g}")
    ax.set(xscale="log", xlabel="training tokens D", ylabel="loss")
    ax.set_title(f"L = E + A/N^α + B/D^β: α = {p.alpha:.3f}, β = {p.beta:.3f}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _note_sample(ax, len(shown), n_all)
    out = {"fit": styled(fig)}

    fig, axes = new_figure(ncols=2, width=5.0, height=3.8)
    for _, sel, color, label in groups:
        axes[0].scatter(C[sel], loss[sel], color=color, s=16, label=label)
    _note_sample(axes[0], len(shown), n_all)
    n_opt, d_opt = p.compute_optimal(c_grid)
    axes[0].plot(c_grid, p.predict(n_opt, d_opt), color="black", lw=1.4, label="compute-optimal")
    axes[0].set(xscale="log", xlabel="compute C = 6ND (FLOP)", ylabel="loss")
    axes[0].set_title("Loss against compute", fontsize=10)
    axes[0].legend()
    axes[1].plot(c_grid, n_opt, color=PALETTE[0], lw=1.4, label=f"N_opt ∝ C^{p.a:.3f}")
    axes[1].plot(c_grid, d_opt, color=PALETTE[1], lw=1.4, label=f"D_opt ∝ C^{p.b:.3f}")
    boot = bootstrap
    if boot is not None and len(boot):
        for col, base, sign, color in (("a", "G", 1, PALETTE[0]), ("b", "G", -1, PALETTE[1])):
            draws = (
                boot[base].to_numpy()[:, None] ** sign
                * (c_grid / 6) ** boot[col].to_numpy()[:, None]
            )
            lo, hi = np.nanquantile(draws, [0.025, 0.975], axis=0)
            axes[1].fill_between(c_grid, lo, hi, color=color, alpha=0.15, lw=0)
    axes[1].scatter(C, N, color="#999999", s=8, label="runs (N)")
    axes[1].set(xscale="log", yscale="log", xlabel="compute C (FLOP)", ylabel="N or D")
    axes[1].set_title("Compute-optimal allocation (95% band)", fontsize=10)
    axes[1].legend()
    out["frontier"] = styled(fig)
    return out


def isoflop_figures(fit: Any, N: Any, loss: Any, C: Any) -> dict[str, Figure]:
    """``isoflop``: loss against N per budget with each parabola and its vertex;
    ``isoflop_optima``: ``N_opt`` and ``D_opt`` against C with the fitted power laws."""
    N, loss, C = (np.asarray(v, float) for v in (N, loss, C))
    fig, ax = new_figure(width=6.0, height=4.0)
    optima = fit.optima_.set_index("C")
    shown = np.zeros(len(N), dtype=bool)
    shown[_plotted(len(N))] = True
    for i, c in enumerate(np.unique(C)):
        sel = np.equal(C, c)
        color = PALETTE[i % len(PALETTE)]
        dots = sel & shown
        ax.scatter(N[dots], loss[dots], color=color, s=18, zorder=3, label=f"C = {_fmt(c)}")
        if c in optima.index:
            v = np.log(N[sel])
            coef = np.polyfit(v - v.mean(), loss[sel], 2)
            grid = np.linspace(v.min() - 0.2, v.max() + 0.2, 100)
            ax.plot(np.exp(grid), np.polyval(coef, grid - v.mean()), color=color, lw=1.1)
            row = optima.loc[c]
            ax.scatter([row.N_opt], [row.loss_opt], color=color, marker="*", s=90, zorder=4)
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss")
    ax.set_title("IsoFLOP profiles (★ = fitted optimum)", fontsize=10)
    _note_sample(ax, int(shown.sum()), len(N))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    out = {"isoflop": styled(fig)}

    fig, ax = new_figure(width=5.5, height=3.8)
    c_grid = np.geomspace(optima.index.min() / 2, optima.index.max() * 2, 100)
    n_line, d_line = fit.predict_optimal(c_grid)
    ax.scatter(optima.index, optima.N_opt, color=PALETTE[0], s=24)
    ax.scatter(optima.index, optima.D_opt, color=PALETTE[1], s=24)
    ax.plot(c_grid, n_line, color=PALETTE[0], label=f"N_opt ∝ C^{fit.a_:.3f}")
    ax.plot(c_grid, d_line, color=PALETTE[1], label=f"D_opt ∝ C^{fit.b_:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOP)", ylabel="N_opt or D_opt")
    ax.set_title("Optima per budget and power laws", fontsize=10)
    ax.legend()
    out["isoflop_optima"] = styled(fig)
    return out


def power_law_figure(fit: Any, x: Any, y: Any, *, xlabel: str = "x", ylabel: str = "y") -> Figure:
    """Data and a fitted ``PowerLaw`` or ``SaturatingPowerLaw`` on log-log axes."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    fig, ax = new_figure(width=5.5, height=3.8)
    grid = np.geomspace(x.min() / 1.5, x.max() * 1.5, 200)
    shown = _plotted(len(x))
    ax.scatter(x[shown], y[shown], color=PALETTE[0], s=18, zorder=3, label="data")
    _note_sample(ax, len(shown), len(x))
    E = getattr(fit, "E_", None)
    label = f"{'E + ' if E is not None else ''}A·x^-α, α = {fit.alpha_:.3f}"
    ax.plot(grid, fit.predict(grid), color=PALETTE[1], lw=1.4, label=label)
    if E is not None:
        ax.axhline(E, color="#555555", ls="--", lw=1, label=f"E = {E:.4g}")
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    return styled(fig)
