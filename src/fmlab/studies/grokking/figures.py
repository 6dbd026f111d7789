"""Figures of a grokking run, read from its run directory (never from training)."""

from __future__ import annotations

import json

import numpy as np

from fmlab.report.figures import PALETTE, new_figure, plot_curves, styled
from fmlab.stats.seeds import BY_SEED
from fmlab.store import RunData


def figures(run: RunData) -> dict[str, object]:
    m = run.metrics
    out: dict[str, object] = {}
    base = {"variant": "baseline"} if "variant" in m else {}

    fig, ax = new_figure()
    plot_curves(ax, m, ["train_acc", "test_acc"], where=base)
    summary = (run.summary or {}).get("metrics", {})
    for key, color in (("step_train_acc_99", PALETTE[0]), ("step_test_acc_95", PALETTE[1])):
        for step in summary.get(f"{key}{BY_SEED}") or []:
            if step:
                ax.axvline(step, color=color, ls=":", lw=0.8)
    ax.set(ylabel="accuracy", title="Accuracy (one line per seed; dotted: 99% train, 95% test)")
    out["accuracy"] = styled(fig)

    fig, ax = new_figure()
    plot_curves(ax, m, ["train_loss", "test_loss"], where=base, logy=True)
    ax.set(ylabel="cross-entropy", title="Loss")
    out["loss"] = styled(fig)

    fig, ax = new_figure()
    plot_curves(ax, m, ["weight_norm"], where=base)
    ax.set(ylabel="‖θ‖₂", title="Total weight norm")
    out["weight_norm"] = styled(fig)

    fig, ax = new_figure()
    plot_curves(ax, m, ["fourier_top_k_frac"], where=base, colors=PALETTE[2:])
    ax.set(ylabel="share of energy", title="Embedding energy in the top-k Fourier frequencies")
    out["fourier_progress"] = styled(fig)

    if "excluded_loss" in set(m["name"]):
        out |= progress_figures(m, base, summary)

    spectra = sorted(run.artifacts.glob("fourier_baseline_seed*.json"))
    if spectra:
        data = json.loads(spectra[0].read_text())
        k = np.arange(1, len(data["init"]) + 1)
        fig, ax = new_figure(width=7.0)
        ax.bar(k - 0.2, data["init"], width=0.4, color="#bbbbbb", label="initialisation")
        ax.bar(k + 0.2, data["final"], width=0.4, color=PALETTE[0], label="end of training")
        ax.set(
            xlabel="frequency k",
            ylabel="share of embedding energy",
            title=f"Fourier spectrum of the token embedding ({spectra[0].stem[8:]})",
        )
        ax.legend()
        out["fourier_spectrum"] = styled(fig)

    if "variant" in m and (m["variant"] == "grokfast").any():
        fig, ax = new_figure()
        for color, variant in zip(PALETTE, ("baseline", "grokfast"), strict=False):
            plot_curves(
                ax,
                m,
                ["test_acc"],
                where={"variant": variant},
                colors=[color],
                labels={"test_acc": f"test acc, {variant}"},
            )
        ax.legend()
        ax.set(ylabel="test accuracy", title="Grokfast-EMA vs baseline (same seeds)")
        out["grokfast"] = styled(fig)
    return out


def _phase_lines(ax, summary: dict) -> None:
    """Dashed lines at each seed's end of memorisation and start of clean-up."""
    for key, color in (("t_mem", "#555555"), ("t_clean", "#aa3377")):
        for step in summary.get(f"{key}{BY_SEED}") or []:
            if step:
                ax.axvline(step, color=color, ls="--", lw=0.8)


def progress_figures(m, base: dict, summary: dict) -> dict[str, object]:
    """Nanda et al. 2023's progress measures (their Fig. 7): excluded and restricted loss
    against train and test loss, and the Fourier sparsity of W_E and W_L."""
    out: dict[str, object] = {}
    labels = {
        "excluded_loss": "excluded loss (train)",
        "restricted_loss": "restricted loss (all pairs)",
        "train_loss": "train loss",
        "test_loss": "test loss",
    }
    fig, ax = new_figure()
    plot_curves(
        ax, m, ["excluded_loss", "train_loss", "test_loss"], where=base, logy=True, labels=labels
    )
    _phase_lines(ax, summary)
    ax.set(
        ylabel="cross-entropy",
        title="Excluded loss: key-frequency directions removed (dashed: t_mem, t_clean)",
    )
    out["excluded_loss"] = styled(fig)

    fig, ax = new_figure()
    plot_curves(
        ax,
        m,
        ["restricted_loss", "test_loss", "train_loss"],
        where=base,
        logy=True,
        labels=labels,
    )
    _phase_lines(ax, summary)
    ax.set(ylabel="cross-entropy", title="Restricted loss: only the key-frequency directions")
    out["restricted_loss"] = styled(fig)

    fig, ax = new_figure()
    plot_curves(
        ax,
        m,
        ["gini_embed", "gini_unembed", "key_share_embed", "key_share_unembed"],
        where=base,
        colors=PALETTE[2:] + PALETTE[:2],
        labels={
            "gini_embed": "Gini, W_E Fourier norms",
            "gini_unembed": "Gini, W_L Fourier norms",
            "key_share_embed": "W_E energy in key freqs",
            "key_share_unembed": "W_L energy in key freqs",
        },
    )
    _phase_lines(ax, summary)
    ax.set(ylabel="value", title="Fourier sparsity of the embedding and neuron-logit map")
    out["fourier_sparsity"] = styled(fig)
    return out
