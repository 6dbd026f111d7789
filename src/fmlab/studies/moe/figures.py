"""Figures of a ``moe`` run, read from its run directory: held-out loss per variant against
the language's optimum, router balance during training, and the final expert loads."""

from __future__ import annotations

import json

import numpy as np

from fmlab.report.figures import PALETTE, new_figure, plot_curves, styled
from fmlab.store import RunData

COLORS = dict(zip(("dense_active", "moe", "moe_no_balance", "dense_total"), PALETTE, strict=False))


def figures(run: RunData) -> dict[str, object]:
    m = run.metrics
    out: dict[str, object] = {}
    if "variant" not in m:
        return out
    summary = (run.summary or {}).get("metrics", {})

    fig, ax = new_figure()
    for variant in dict.fromkeys(m["variant"].dropna()):
        plot_curves(
            ax, m, ["excess_loss"], where={"variant": variant}, colors=[COLORS.get(variant, "k")],
            labels={"excess_loss": variant}, logy=True,
        )  # fmt: skip
    rate = summary.get("entropy_rate")
    title = "Held-out loss above the optimum" + (f" (entropy rate {rate:.3f})" if rate else "")
    ax.set(ylabel="excess loss (nats/token, log)", title=title)
    out["loss"] = styled(fig)

    moe_variants = [v for v in ("moe", "moe_no_balance") if (m["variant"] == v).any()]
    if moe_variants and (m["name"] == "load_cv").any():
        fig, ax = new_figure()
        for v in moe_variants:
            plot_curves(
                ax, m, ["load_cv"], where={"variant": v}, colors=[COLORS[v]], labels={"load_cv": v}
            )
        ax.set(ylabel="CV of expert load", title="Router balance (0 = uniform)")
        out["router_balance"] = styled(fig)

    path = run.artifacts / "results.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    shown = [r for r in rows if r["loads"] and r["seed"] == rows[0]["seed"]]
    if shown:
        fig, axes = new_figure(ncols=len(shown), width=3.6)
        top = max(max(layer) for r in shown for layer in r["loads"]) * 1.1
        for ax, r in zip(np.atleast_1d(axes), shown, strict=True):
            ax.set_ylim(0, top)  # one scale, so balance can be compared at a glance
            loads = np.array(r["loads"])  # (layers, E)
            E = loads.shape[1]
            for i, layer in enumerate(loads):
                ax.bar(np.arange(E) + i / (len(loads) + 1), layer, width=1 / (len(loads) + 1),
                       color=PALETTE[i % len(PALETTE)], label=f"layer {i}")  # fmt: skip
            ax.axhline(1 / E, color="#888888", ls=":", lw=1)
            ax.set(xlabel="expert", ylabel="fraction of tokens", title=r["variant"])
            ax.legend()
        out["expert_load"] = styled(fig)
    return out
