"""Adding a study, a mixer or an instrument is one new module and no edit elsewhere:
each is written here into a temporary directory, imported with ``--import``, and then
shows up in ``fmlab list``, runs, and appears in its report."""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmlab.cli import app

runner = CliRunner()


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A fresh directory on the import path, as the current directory of a user."""
    monkeypatch.chdir(tmp_path)
    names_before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - names_before:  # the plugin's module and registrations
        if name.startswith("myext_"):
            sys.modules.pop(name)


def fmlab(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _unregister(registry, name):
    if name in registry:
        registry.remove(name)


def test_a_new_study_is_one_module(plugin_dir):
    """A copy of the smallest bundled study (one file) under another name."""
    import fmlab.studies.inspect as smallest
    from fmlab.study import STUDIES

    source = inspect.getsource(smallest).replace(
        '@study(\n    "inspect",', '@study(\n    "inspect-copy",'
    )
    assert '"inspect-copy"' in source
    (plugin_dir / "myext_study.py").write_text(source)
    try:
        ran = fmlab("run", "inspect-copy", "-p", "smoke", "--import", "myext_study",
                    "--out", str(plugin_dir / "runs"))  # fmt: skip
        listed = fmlab("list", "--import", "myext_study")
        assert "inspect-copy" in [s["name"] for s in listed["studies"]]
        assert ran["status"] == "completed" and Path(ran["path"]).parent.name == "inspect-copy"
        page = Path(ran["report"]).read_text()
        assert "Inspect a model" in page and "alt='cka'" in page  # its title and its figure
    finally:
        _unregister(STUDIES, "inspect-copy")


MIXER = '''
"""A causal running mean: each position mixes the mean of the inputs so far."""
from typing import Literal

import torch
from torch import nn

from fmlab.models.layers import Linear
from fmlab.models.mixers import MixerConfig, register_mixer


class RunningMeanConfig(MixerConfig):
    kind: Literal["running-mean"] = "running-mean"


@register_mixer(RunningMeanConfig)
class RunningMean(nn.Module):
    def __init__(self, cfg, generator):
        super().__init__()
        self.proj = Linear(cfg.d_model, cfg.d_model, generator)

    def forward(self, x, *, last_only=False):  # (B, T, D)
        counts = torch.arange(1, x.shape[1] + 1, dtype=x.dtype)[:, None]
        y = self.proj(x.cumsum(1) / counts)
        return y[:, -1:] if last_only else y

    def state_size(self, seq_len):
        return self.proj.weight.shape[0] + 1

    def flops_per_token(self, seq_len):
        return 2.0 * self.proj.weight.numel()
'''


def test_a_new_mixer_is_one_module(plugin_dir):
    from fmlab.models import MIXERS

    (plugin_dir / "myext_mixer.py").write_text(textwrap.dedent(MIXER))
    try:
        ran = fmlab("run", "grokking", "-p", "smoke", "--import", "myext_mixer",
                    "--set", "model.mixer=running-mean", "--set", "compare_grokfast=null",
                    "--out", str(plugin_dir / "runs"))  # fmt: skip
        assert "running-mean" in fmlab("list", "--import", "myext_mixer")["mixers"]
        assert ran["status"] == "completed"
        assert ran["config"]["model"]["mixer"] == {"kind": "running-mean"}
        page = Path(ran["report"]).read_text()
        assert "running-mean" in page and "data:image/png;base64," in page
    finally:
        _unregister(MIXERS, "running-mean")


INSTRUMENT = '''
"""``norms``: the mean activation norm of every layer."""
from fmlab.instruments import instrument


def norms_figure(run, info):
    from fmlab.report.figures import new_figure, styled

    fig, ax = new_figure()
    ax.plot(range(len(info["norms"])), info["norms"], marker="o")
    ax.set(xlabel="layer", ylabel="mean norm")
    return styled(fig)


@instrument("norms", help="mean activation norm per layer", reduce="tokens",
            figure=norms_figure)
def norms(ins, run):
    acts = ins.layer_activations()
    values = [float(x.norm(dim=-1).mean()) for x in acts.tensors]
    for i, (label, value) in enumerate(zip(acts.labels, values)):
        run.log(i, {"norm": value}, layer=label)
    ins.info["norms"] = values
    return {"norm_embed": values[0], "norm_last": values[-1]}
'''


def test_a_new_instrument_is_one_module(plugin_dir):
    from fmlab.instruments import INSTRUMENTS

    (plugin_dir / "myext_instrument.py").write_text(textwrap.dedent(INSTRUMENT))
    try:  # inspect first: its own --import must register the instrument
        ran = fmlab("inspect", "tiny-gpt2", "-i", "norms", "--import", "myext_instrument",
                    "--set", "max_texts=8", "--out", str(plugin_dir / "runs"))  # fmt: skip
        assert "norms" in fmlab("list", "--import", "myext_instrument")["instruments"]
        assert ran["status"] == "completed" and ran["metrics"]["norm_last"] > 0
        page = Path(ran["report"]).read_text()
        assert "alt='norms'" in page
    finally:
        _unregister(INSTRUMENTS, "norms")
