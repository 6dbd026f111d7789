"""``cka``: linear (or debiased, RBF) CKA between every pair of layers (Kornblith et al.
2019), or between the layers of two models (``--compare``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fmlab.errors import UserInputError
from fmlab.instruments.base import Inspection, instrument


def cka_figure(run: Any, info: dict[str, Any]) -> Any:
    from fmlab.report.figures import new_figure, styled

    M = np.array(info["cka"], dtype=float)
    la, lb = info["layers"], info.get("layers_b", info["layers"])
    model = info["model"]["name"]
    fig, ax = new_figure(width=5.6, height=4.6)
    im = ax.imshow(M, vmin=0, vmax=1, cmap="viridis", origin="lower")
    ax.set(xticks=range(len(lb)), xticklabels=lb, yticks=range(len(la)), yticklabels=la)
    ax.grid(False)
    other = info.get("compare", {}).get("name")
    ax.set(xlabel=f"layer of {other or model}", ylabel=f"layer of {model}")
    ax.set_title(f"{run.config['cka_kind']} CKA, {info['reduce']} rows ({model})")
    fig.colorbar(im, ax=ax, shrink=0.85)
    return styled(fig)


@instrument(
    "cka",
    help="layer × layer CKA (model × model with --compare)",
    figure=cka_figure,
    reduce="tokens",
)
def cka(ins: Inspection, run: Any) -> dict[str, Any]:
    from fmlab.measure import cka_matrix

    acts = ins.layer_activations()
    other = None
    if ins.cfg.compare is not None:
        second = ins.load(ins.cfg.compare)
        other = ins.layer_activations(second)
        ins.info |= {"compare": ins.describe(second), "layers_b": other.labels}
        if len(other.tensors[0]) != len(acts.tensors[0]):
            raise UserInputError(
                f"the two models give different numbers of rows ({len(acts.tensors[0])} and "
                f"{len(other.tensors[0])}): their tokenizers split the texts differently. "
                "Compare sentence representations instead: --set reduce=mean"
            )
    M = cka_matrix(acts.tensors, other.tensors if other else None, kind=ins.cfg.cka_kind)
    labels_b = other.labels if other else acts.labels
    for i, la in enumerate(acts.labels):
        for j, lb in enumerate(labels_b):
            run.log(i, {"cka": M[i, j]}, layer=la, layer_b=lb)
    ins.info["cka"] = M.tolist()
    if other is None:
        return {
            "cka_adjacent_mean": float(np.mean(np.diag(M, 1))),
            "cka_embed_last": float(M[0, -1]),
            "cka_first_last": float(M[1, -1]),
            "cka_min": float(M.min()),
        }
    best = M.max(axis=1)  # for each layer of A, its most similar layer of B
    out = {"cka_best_match_mean": float(best.mean()), "cka_last_last": float(M[-1, -1])}
    if M.shape[0] == M.shape[1]:
        out["cka_diagonal_mean"] = float(np.mean(np.diag(M)))
    return out
