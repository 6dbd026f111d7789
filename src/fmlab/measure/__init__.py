"""Pure math of the instruments: functions from activations, weights or predictions to
numbers or small frozen results (tensors in, numbers out; no model, no hooks, no files).

Every function accepts torch tensors or numpy arrays and computes in float64 numpy:
CKA (:mod:`~fmlab.measure.cka`), linear probes with control tasks
(:mod:`~fmlab.measure.probes`), calibration (:mod:`~fmlab.measure.calibration`),
spectra (:mod:`~fmlab.measure.spectra`) and the Fourier progress measure of a
modular-arithmetic embedding (:mod:`~fmlab.measure.fourier`, Nanda et al. 2023). Applying
one of them across a model's layers, with its figure, is an *instrument*
(:mod:`fmlab.instruments`).
"""

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
