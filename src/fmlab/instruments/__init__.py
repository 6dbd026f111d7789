"""Instruments: one measure across a model's layers and its figure, one file each.

``fmlab inspect MODEL --instrument NAME`` runs one on a real or exported model (the
``inspect`` study); :mod:`fmlab.instruments.base` states the contract. Importing this
package imports every module in it, so a new file is found without an edit here (a
user's instrument elsewhere is registered by importing it: ``--import``).

Bundled: ``cka`` (layer × layer or model × model), ``probe`` (with a control task),
``spectra`` (effective rank, participation ratio), ``calibration`` (of the LM head, with
temperature scaling) and ``logit-lens``.
"""

from __future__ import annotations

import importlib
import pkgutil

from fmlab.instruments.base import (
    INSTRUMENTS,
    Inspection,
    Instrument,
    LayerActivations,
    instrument,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["INSTRUMENTS", "Inspection", "Instrument", "LayerActivations", "instrument"]
