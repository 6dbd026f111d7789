"""Figures of a scaling run, read from its run directory (never from training).

``artifacts/runs.csv`` holds one row per (N, D) run and ``artifacts/fits.json`` the fitted
law; the trunks' learning curves are the ``phase == "trunk"`` rows of the metrics table.
"""

from __future__ import annotations

import json
import warnings

import pandas as pd

from fmlab.fit import ChinchillaParams, IsoFlopFit
from fmlab.fit.figures import chinchilla_figures, isoflop_figures
from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.store import RunData


def figures(run: RunData) -> dict[str, object]:
    table_path, fits_path = run.artifacts / "runs.csv", run.artifacts / "fits.json"
    if not table_path.exists() or not fits_path.exists():
        return {}
    table = pd.read_csv(table_path)
    fits = json.loads(fits_path.read_text())
    law = fits["chinchilla"]
    params = ChinchillaParams(law["E"], law["A"], law["B"], law["alpha"], law["beta"])
    out: dict[str, object] = {}
    boot = pd.DataFrame(fits["bootstrap"]) if fits.get("bootstrap") else None
    law_figs = chinchilla_figures(
        params, table.N, table.D, table.loss, bootstrap=boot, true_E=fits.get("entropy_rate")
    )
    out["law"], out["frontier"] = law_figs["fit"], law_figs["frontier"]
    if fits.get("isoflop"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # already reported in the summary
            iso = IsoFlopFit(n_bootstrap=0).fit(table.N, table.loss, table.budget)
        out.update(isoflop_figures(iso, table.N, table.loss, table.budget))
    out["learning_curves"] = learning_curves(run, table, fits.get("entropy_rate"))
    return out


def learning_curves(run: RunData, table: pd.DataFrame, h: float | None):
    """Excess loss of each width's constant-lr trunk against tokens, with the cooled-down
    (final) runs as dots: the gap between line and dot is what the cool-down buys."""
    m = run.metrics
    bayes = (run.summary or {}).get("metrics", {}).get("eval_bayes_loss") or h or 0.0
    fig, ax = new_figure(width=6.0, height=4.0)
    if "phase" in m:
        trunk = m[(m["phase"] == "trunk") & (m["name"] == "eval_loss") & (m["tokens"] > 0)]
        for i, (width, g) in enumerate(trunk.groupby("d_model")):
            color = PALETTE[i % len(PALETTE)]
            n = int(g["n_params"].iloc[0])
            for j, (_, line) in enumerate(g.groupby("seed")):  # one line per seed
                line = line.sort_values("tokens")
                label = f"d={int(width)}, N={n:,}" if j == 0 else None
                ax.plot(line["tokens"], line["value"] - bayes, color=color, lw=1.0, label=label)
            fin = table[table["width"] == width]
            ax.scatter(fin["D"], fin["loss"] - bayes, color=color, s=22, zorder=3)
    ax.set(xscale="log", yscale="log", xlabel="tokens", ylabel="excess loss over optimum (nats)")
    ax.set_title("Trunks at constant lr (lines) and cooled-down runs (dots)", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return styled(fig)
