"""``logit-lens``: every block's residual stream decoded with the final norm and the
unembedding (nostalgebraist 2020): agreement with the model's own top-1, accuracy on the
next token, and KL from the model's output distribution, per block."""

from __future__ import annotations

from typing import Any

import numpy as np

from fmlab.errors import UserInputError
from fmlab.instruments.base import Inspection, instrument, lm_kind


def lens_layers(model, batches: list[dict], kind: str = "resid_post") -> list[dict[str, float]]:
    """Logit-lens metrics (:func:`fmlab.hooks.lens_metrics`) of every block, pooled over
    batches, for a causal LM (next-token targets)."""
    import torch

    with torch.no_grad():
        return _lens_layers(model, batches, kind)


def _lens_layers(model, batches: list[dict], kind: str) -> list[dict[str, float]]:
    import torch

    from fmlab.hooks import block_sites, hooked, lens_metrics, unembedding

    if lm_kind(model) != "causal":
        raise UserInputError("the logit lens instrument reads decoder (causal) LMs")
    decode = unembedding(model)
    names = block_sites(model, kind)
    sums: list[dict[str, float]] = [{} for _ in names]
    total = 0
    with hooked(model, read=[*names, "logits"]) as store:
        for batch in batches:
            model(**batch)
            ids, mask = batch["input_ids"], batch["attention_mask"].bool()
            keep = mask & torch.roll(mask, -1, dims=1)
            keep[:, -1] = False
            k = int(keep.sum())
            for i, name in enumerate(names):
                m = lens_metrics(decode(store[name]), store["logits"], torch.roll(ids, -1, 1), keep)
                for key, value in m.items():
                    sums[i][key] = sums[i].get(key, 0.0) + value * k
            total += k
    return [{key: v / total for key, v in s.items()} for s in sums]


def lens_figure(run: Any, info: dict[str, Any]) -> Any:
    from fmlab.report.figures import PALETTE, new_figure, styled

    rows = info["lens"]
    fig, ax = new_figure(width=6.0)
    x = np.arange(len(rows))
    ax.plot(x, [r["agreement"] for r in rows], marker="o", label="top-1 = model's")
    ax.plot(x, [r["accuracy"] for r in rows], marker="s", label="top-1 = next token")
    ax2 = ax.twinx()
    ax2.plot(x, [r["kl_final"] for r in rows], color=PALETTE[2], marker="^", label="KL")
    ax2.set_ylabel("KL(model ‖ lens), nats")
    ax.set(xlabel="block", ylabel="fraction", title=f"Logit lens on {info['model']['name']}")
    ax.legend()
    return styled(fig)


@instrument(
    "logit-lens",
    help="each block decoded with the final norm + unembedding (causal LMs)",
    figure=lens_figure,
)
def logit_lens(ins: Inspection, run: Any) -> dict[str, Any]:
    rows = lens_layers(ins.model, ins.batches, ins.cfg.site)
    for i, row in enumerate(rows):
        run.log(i, row, layer=str(i))
    ins.info["lens"] = rows
    return {
        "lens_kl_first": rows[0]["kl_final"],
        "lens_agreement_first": rows[0]["agreement"],
        "lens_agreement_last": rows[-1]["agreement"],
        "lens_logprob_last": rows[-1]["target_logprob"],
    }
