"""What an adaptation changed: per weight matrix ΔW = W_adapted − W_base (its singular
spectrum, effective rank, the energy in its top r directions, the overlap of its top
directions with LoRA's), and per layer the CKA between base and adapted representations.

Matrices are fmlab's (``blocks.{i}.mixer.w_q`` …, each (d_in, d_out)): GPT-2's fused
``c_attn`` is split back into q, k and v by :func:`fmlab.models.hf.export.fmlab_state_dict`
so that each is one linear map, as in Hu et al. 2022 §7 (which looks at W_q and W_v).
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

from fmlab.measure.spectra import effective_rank, singular_values
from fmlab.models import GPT
from fmlab.models.hf.export import gpt_from_state
from fmlab.studies.adaptation.methods import body, merged

MATRIX = re.compile(r"blocks\.\d+\.(mixer\.w_[qkvo]|mlp\.w_(in|out))\.weight$")


def as_gpt(model: nn.Module, lm_head: torch.Tensor) -> GPT:
    """fmlab's GPT with the (merged) transformer of ``model`` and the unembedding
    ``lm_head`` (V, D) — the base model's, for a classifier."""
    flat = merged(model)
    t = body(flat)
    state = {f"transformer.{k}": v.detach().cpu() for k, v in t.state_dict().items()}
    state["lm_head.weight"] = lm_head.detach().cpu()
    return gpt_from_state(t.config, state)


def energy_top(s: np.ndarray, r: int) -> float:
    """Share of ‖ΔW‖²_F in the top ``r`` singular directions."""
    total = float(np.sum(s**2))
    return float(np.sum(s[:r] ** 2) / total) if total > 0 else float("nan")


def update_spectra(base: GPT, tuned: GPT, r: int) -> dict[str, dict[str, object]]:
    """Per block matrix: singular values of ΔW, effective rank (and as a fraction of
    the full rank), relative size ‖ΔW‖/‖W‖ and the energy share of its top ``r``."""
    a, b = base.state_dict(), tuned.state_dict()
    out: dict[str, dict[str, object]] = {}
    for name in a:
        if not MATRIX.search(name):
            continue
        dw = (b[name] - a[name]).double()
        s = singular_values(dw.numpy())
        out[name.removesuffix(".weight")] = {
            "sv": s,
            "eff_rank": effective_rank(dw.numpy()),
            "eff_rank_frac": effective_rank(dw.numpy()) / min(dw.shape),
            "rel_norm": float(dw.norm() / a[name].double().norm()),
            "energy_top_r": energy_top(s, r),
            "shape": tuple(dw.shape),
        }
    return out


def random_energy_top(shapes: list[tuple[int, int]], r: int, seed: int) -> float:
    """The same share for Gaussian matrices of the same shapes: what ``energy_top_r``
    would be for an update with no low-rank structure (a reference, not a claim)."""
    rng = np.random.default_rng(seed)
    return float(np.mean([energy_top(np.linalg.svd(rng.standard_normal(s), compute_uv=False), r)
                          for s in shapes]))  # fmt: skip


def subspace_overlap(dw_a: torch.Tensor, dw_b: torch.Tensor, r: int) -> float:
    """Hu et al. 2022 §7.2's normalised subspace similarity φ = ‖U_aᵀU_b‖²_F / r between
    the top-``r`` input-side singular directions of two updates (1 = same subspace; a
    random pair gives ≈ r/d_in)."""
    ua = np.linalg.svd(dw_a.double().numpy(), full_matrices=False)[0][:, :r]
    ub = np.linalg.svd(dw_b.double().numpy(), full_matrices=False)[0][:, :r]
    return float(np.sum((ua.T @ ub) ** 2) / r)


def overlaps(base: GPT, a: GPT, b: GPT, r: int) -> dict[str, float]:
    """φ between the updates of two adapted models (full FT and LoRA), per matrix that
    both changed."""
    sb, sa, s2 = base.state_dict(), a.state_dict(), b.state_dict()
    out = {}
    for name in sb:
        if MATRIX.search(name):
            da, db = sa[name] - sb[name], s2[name] - sb[name]
            if da.abs().max() > 0 and db.abs().max() > 0:
                out[name.removesuffix(".weight")] = subspace_overlap(da, db, min(r, *da.shape))
    return out


def layer_cka(base: GPT, tuned: GPT, tokens: torch.Tensor) -> dict[str, float]:
    """Linear CKA per layer (embedding, each block's output) between base and adapted
    on the same tokens — the ``representations`` study's measure."""
    from fmlab.studies.representations.measure import layer_cka as cka

    return cka(base, tuned, tokens.cpu())
