"""``spectra``: effective rank (Roy & Vetterli 2007), participation ratio and stable rank
of each layer's activations."""

from __future__ import annotations

from typing import Any

from fmlab.instruments.base import Inspection, instrument

KEYS = ("effective_rank", "participation_ratio")


def spectra_figure(run: Any, info: dict[str, Any]) -> Any:
    from fmlab.report.figures import PALETTE, new_figure, styled

    m = run.metrics
    fig, ax = new_figure(width=6.0)
    for color, name in zip(PALETTE, KEYS, strict=False):
        rows = m[m["name"] == name].sort_values("step")
        ax.plot(rows["step"], rows["value"], marker="o", color=color, label=name)
    ax.set(xlabel="layer (0 = embed)", ylabel="dimensions")
    ax.set_title(f"Spectra of {info['model']['name']}")
    ax.legend()
    return styled(fig)


@instrument(
    "spectra",
    help="effective rank and participation ratio of each layer's activations",
    figure=spectra_figure,
    reduce="tokens",
)
def spectra(ins: Inspection, run: Any) -> dict[str, Any]:
    from fmlab.measure import activation_spectra

    acts = ins.layer_activations()
    summaries = [activation_spectra(f) for f in acts.tensors]
    for i, (name, s) in enumerate(zip(acts.labels, summaries, strict=True)):
        metrics = {
            "effective_rank": s.effective_rank,
            "participation_ratio": s.participation_ratio,
            "stable_rank": s.stable_rank,
        }
        run.log(i, metrics, layer=name)
    return {
        "effective_rank_embed": summaries[0].effective_rank,
        "effective_rank_last": summaries[-1].effective_rank,
        "participation_ratio_embed": summaries[0].participation_ratio,
        "participation_ratio_last": summaries[-1].participation_ratio,
    }
