"""The instrument registry and the package's public surface."""

from __future__ import annotations

import pytest

import fmlab.measure as measure
from fmlab.registry import UnknownNameError


def test_instruments_map_names_to_each_modules_main_function():
    reg = measure.INSTRUMENTS
    assert reg.kind == "instrument"
    assert reg.names() == ["calibration", "cka", "probe", "spectra"]
    assert reg.get("cka") is measure.linear_cka
    assert reg.get("probe") is measure.linear_probe
    assert reg.get("calibration") is measure.calibration_report
    assert reg.get("spectra") is measure.spectral_summary
    with pytest.raises(UnknownNameError, match="Did you mean 'cka'"):
        reg.get("ckaa")


def test_all_is_explicit_and_importable():
    assert len(set(measure.__all__)) == len(measure.__all__)
    for name in measure.__all__:
        assert getattr(measure, name) is not None
