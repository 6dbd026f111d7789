"""Measurements of the ``representations`` study: layer-wise CKA between a pre-trained
and a fine-tuned model on the same inputs, the size and effective rank of each block's
weight update, and their aggregation over seeds with t-intervals."""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from fmlab.hooks import capture
from fmlab.measure import linear_cka, weight_update_spectra
from fmlab.models import GPT
from fmlab.store import Run


def layer_sites(model: GPT) -> list[tuple[str, str]]:
    """(label, site) of the embedding and of every block's output."""
    blocks = [(f"block{i}", f"blocks.{i}.resid_post") for i in range(len(model.blocks))]
    return [("embed", "embed"), *blocks]


@torch.no_grad()
def layer_cka(pre: GPT, tuned: GPT, tokens: torch.Tensor) -> dict[str, float]:
    """Linear CKA of each layer between the two models, tokens as examples."""
    sites = [s for _, s in layer_sites(pre)]
    a, b = capture(pre, tokens, sites), capture(tuned, tokens, sites)
    flat = lambda t: t.reshape(-1, t.shape[-1])  # noqa: E731  (B, T, D) -> (B·T, D)
    return {label: linear_cka(flat(a[s]), flat(b[s])) for label, s in layer_sites(pre)}


def update_stats(pre: GPT, tuned: GPT) -> dict[str, dict[str, float]]:
    """Per layer: ‖ΔW‖_F / ‖W‖_F over its 2-D weights and the mean effective rank of
    ΔW (Roy & Vetterli 2007), as a fraction of the largest possible rank."""
    sd_pre, sd_tuned = pre.state_dict(), tuned.state_dict()
    spectra = weight_update_spectra(sd_pre, sd_tuned)
    groups: dict[str, list[str]] = {}
    for name in spectra:
        m = re.match(r"blocks\.(\d+)\.", name)
        label = f"block{m.group(1)}" if m else "embed" if name in ("W_E", "W_pos") else None
        if label is not None:
            groups.setdefault(label, []).append(name)
    out = {}
    for label, names in groups.items():
        dw = sum(float((sd_tuned[n] - sd_pre[n]).double().pow(2).sum()) for n in names)
        w = sum(float(sd_pre[n].double().pow(2).sum()) for n in names)
        ranks = [spectra[n].effective_rank / min(spectra[n].shape) for n in names]
        out[label] = {"dW_rel_norm": math.sqrt(dw / w), "dW_eff_rank_frac": float(np.mean(ranks))}
    return out


def compare_models(
    pre: GPT, tuned: GPT, tokens: torch.Tensor, variant: str, run: Run, seed: int
) -> dict[str, float]:
    """Log per-layer CKA and weight-update statistics; return them as flat metrics,
    with ``cka_drop_<variant>`` = CKA at block 0 − CKA at the last block."""
    cka = layer_cka(pre, tuned, tokens)
    updates = update_stats(pre, tuned)
    out: dict[str, float] = {}
    for step, (label, _) in enumerate(layer_sites(pre)):
        metrics = {"cka": cka[label], **updates.get(label, {})}
        run.log(step, metrics, seed=seed, variant=variant, layer=label)
        out |= {f"{k}_{variant}_{label}": v for k, v in metrics.items()}
    last = f"block{len(pre.blocks) - 1}"
    out[f"cka_drop_{variant}"] = cka["block0"] - cka[last]
    return out
