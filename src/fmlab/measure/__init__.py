"""Validated instruments: pure functions from activations, weights or predictions to
numbers or small frozen results.

Every instrument accepts torch tensors or numpy arrays and computes in float64 numpy.
``INSTRUMENTS`` names the main entry point of each module (``fmlab list`` shows them):

==============  =======================================  ==========================
name            function                                 module
==============  =======================================  ==========================
``cka``         :func:`linear_cka`                       :mod:`fmlab.measure.cka`
``probe``       :func:`linear_probe`                     :mod:`fmlab.measure.probes`
``calibration`` :func:`calibration_report`               :mod:`fmlab.measure.calibration`
``spectra``     :func:`spectral_summary`                 :mod:`fmlab.measure.spectra`
==============  =======================================  ==========================

:mod:`fmlab.measure.fourier` (the Fourier progress measure of a modular-arithmetic
embedding, Nanda et al. 2023) is exported too; it is specific to tasks over Z_p, so it is
not one of the general instruments.
"""

from fmlab.measure._registry import INSTRUMENTS
from fmlab.measure.calibration import (
    CalibrationReport,
    ReliabilityDiagram,
    TemperatureFit,
    apply_temperature,
    brier_score,
    calibration_report,
    ece,
    fit_temperature,
    mce,
    nll,
    reliability_diagram,
    softmax,
)
from fmlab.measure.cka import (
    MinibatchCKA,
    StreamingLinearCKA,
    cka_matrix,
    debiased_cka,
    linear_cka,
    rbf_cka,
)
from fmlab.measure.fourier import FourierSpectrum, embedding_spectrum, fourier_basis
from fmlab.measure.probes import ProbeResult, control_labels, linear_probe
from fmlab.measure.spectra import (
    SpectralSummary,
    activation_spectra,
    effective_rank,
    participation_ratio,
    singular_values,
    spectral_summary,
    stable_rank,
    weight_update_spectra,
)

__all__ = [
    "INSTRUMENTS",
    "CalibrationReport",
    "FourierSpectrum",
    "MinibatchCKA",
    "ProbeResult",
    "ReliabilityDiagram",
    "SpectralSummary",
    "StreamingLinearCKA",
    "TemperatureFit",
    "activation_spectra",
    "apply_temperature",
    "brier_score",
    "calibration_report",
    "cka_matrix",
    "control_labels",
    "debiased_cka",
    "ece",
    "effective_rank",
    "embedding_spectrum",
    "fit_temperature",
    "fourier_basis",
    "linear_cka",
    "linear_probe",
    "mce",
    "nll",
    "participation_ratio",
    "rbf_cka",
    "reliability_diagram",
    "singular_values",
    "softmax",
    "spectral_summary",
    "stable_rank",
    "weight_update_spectra",
]
