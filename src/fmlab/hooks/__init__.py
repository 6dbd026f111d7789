"""Activations from any model, addressed by canonical site names.

The same names work on fmlab's own GPT and on Hugging Face GPT-2, OPT, Llama, BERT
(incl. MiniLM), RoBERTa, ViT, DINOv2, CLIP and Whisper models (see
:mod:`fmlab.hooks.sites` for what each name means, and docs/instruments.md):

* :func:`capture` / :func:`hooked` — read activations (hooks always removed);
* :func:`capture_dataset` — over many batches, reduced on the fly (mean-pool, last
  token, CLS, tokens) within a memory bound, or streamed to safetensors shards;
* :func:`patch` — activation patching at all or selected positions (causal tracing);
* :func:`logit_lens` — decode every layer with the final norm + unembedding;
* :func:`register_family` — teach fmlab a new model family.
"""

from fmlab.hooks import families as _families  # noqa: F401  (registers the bundled families)
from fmlab.hooks.capture import available_sites, capture, hook_count, hooked, patch, run_model
from fmlab.hooks.dataset import REDUCTIONS, Activations, capture_dataset, reduce_activation
from fmlab.hooks.lens import LensResult, block_sites, lens_metrics, logit_lens, unembedding
from fmlab.hooks.sites import (
    CANONICAL,
    FAMILIES,
    Family,
    HFFamily,
    Site,
    Tower,
    UnsupportedModelError,
    family_of,
    register_family,
    resolve_sites,
)

__all__ = [
    "CANONICAL",
    "FAMILIES",
    "REDUCTIONS",
    "Activations",
    "Family",
    "HFFamily",
    "LensResult",
    "Site",
    "Tower",
    "UnsupportedModelError",
    "available_sites",
    "block_sites",
    "capture",
    "capture_dataset",
    "family_of",
    "hook_count",
    "hooked",
    "lens_metrics",
    "logit_lens",
    "patch",
    "reduce_activation",
    "register_family",
    "resolve_sites",
    "run_model",
    "unembedding",
]
