"""Sequence mixers: the part of a block that moves information between positions.

Every mixer is one file in this package: a typed config (its ``kind`` and its own
options) and an ``nn.Module`` registered with :func:`register_mixer` (see
:mod:`fmlab.models.mixers.base` for the contract). The module is called as
``mixer(x, last_only=False)`` on ``x`` of shape (B, T, D); with ``last_only=True`` it
returns only the last position, (B, 1, D), which lets a task that reads a single output
position skip most of the work of the final block. Importing this package imports every
module in it, so a new file is found without an edit here.

The bundled mixers (Arora et al. 2023, "Zoology", compare exactly these families):

* ``attention`` — causal softmax attention, optionally windowed (Vaswani et al. 2017);
* ``linear_attention`` — causal linear attention with an elu+1 (Katharopoulos et al.
  2020) or 2nd-order Taylor (Based, Arora et al. 2024) feature map;
* ``ssm`` — a selective (input-dependent) diagonal state-space layer with state
  expansion ``d_state``, in the chunked "state-space duality" form of Mamba-2
  (Gu & Dao 2023; Dao & Gu 2024);
* ``hyena`` — a gated long convolution with implicit or explicit filters, by FFT
  (H3, Fu et al. 2023; Hyena, Poli et al. 2023).

Each also reports what it costs: ``state_size(seq_len)`` (numbers carried per sequence
while generating), ``flops_per_token(seq_len)`` (forward, a multiply-add counted as 2)
and its parameter count, gathered by :func:`mixer_info`.
"""

from __future__ import annotations

import importlib
import pkgutil

from fmlab.models.mixers.base import (
    MIXERS,
    Mixer,
    MixerConfig,
    MixerEntry,
    MixerInfo,
    build_mixer,
    mixer_info,
    model_state_size,
    register_mixer,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "MIXERS",
    "Mixer",
    "MixerConfig",
    "MixerEntry",
    "MixerInfo",
    "build_mixer",
    "mixer_info",
    "model_state_size",
    "register_mixer",
]
