"""The instrument registry: one entry per file, its help in --help, typos caught."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fmlab.config import ConfigError
from fmlab.instruments import INSTRUMENTS
from fmlab.registry import UnknownNameError


def test_bundled_instruments_each_have_a_measure_a_figure_and_help():
    assert INSTRUMENTS.names() == ["calibration", "cka", "logit-lens", "probe", "spectra"]
    for name, spec in INSTRUMENTS.items():
        assert spec.name == name and callable(spec.measure) and callable(spec.figure)
        assert spec.help and "\n" not in spec.help
    with pytest.raises(UnknownNameError, match="Did you mean 'cka'"):
        INSTRUMENTS.get("ckaa")


def test_inspect_config_refuses_an_unknown_instrument_and_stray_options():
    from fmlab.catalog import get_study

    study = get_study("inspect")
    with pytest.raises(ConfigError, match=r"unknown instrument 'logit_lens'\. Did you mean"):
        study.resolve("smoke", ["instrument=logit_lens"])
    with pytest.raises(ConfigError, match="instrument 'cka' takes no options"):
        study.resolve("smoke", ["options.depth=2"])


def test_measure_stays_pure_math():
    """Importing fmlab.measure loads no model, hook or instrument code."""
    code = (
        "import sys, fmlab.measure; "
        "print(sorted(m for m in sys.modules if m.startswith(('fmlab.models', 'fmlab.hooks', "
        "'fmlab.instruments', 'fmlab.studies'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
