"""Promise 7 (model files): a malformed model directory is one clear line naming it —
a truncated or garbage safetensors header, invalid JSON in config.json, an unknown
model_type, a config that is not an object — and no model code ever runs."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from fmlab.cli import app

pytest.importorskip("transformers")
runner = CliRunner()


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    from fmlab.models.hf import tiny

    path = tmp_path_factory.mktemp("tiny") / "gpt2"
    tiny("gpt2").model.save_pretrained(path)
    return path


def _damaged(good_dir, tmp_path, name: str, damage) -> str:
    target = tmp_path / name
    shutil.copytree(good_dir, target)
    damage(target)
    return str(target)


def _rewrite_config(key, value):
    def damage(d):
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**cfg, key: value}))

    return damage


DAMAGES = {
    "safetensors-truncated": lambda d: (d / "model.safetensors").write_bytes(
        (d / "model.safetensors").read_bytes()[:100]
    ),
    "safetensors-garbage": lambda d: (d / "model.safetensors").write_bytes(b"\xff" * 64),
    "safetensors-huge-header": lambda d: (d / "model.safetensors").write_bytes(
        (2**62).to_bytes(8, "little") + b"{}"
    ),
    "config-not-json": lambda d: (d / "config.json").write_text("{not json"),
    "config-not-utf8": lambda d: (d / "config.json").write_bytes(b"\xff\xfe{}"),
    "config-a-list": lambda d: (d / "config.json").write_text("[]"),
    "unknown-model-type": _rewrite_config("model_type", "frobnitz-9000"),
    "wrong-shapes": _rewrite_config("n_embd", 48),
}


@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_a_malformed_model_directory_is_one_line(good_dir, tmp_path, name):
    path = _damaged(good_dir, tmp_path, name, DAMAGES[name])
    result = runner.invoke(app, ["inspect", path, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and name in result.output
    # refused before a run directory exists, or (found only while loading) recorded failed
    for summary in (tmp_path / "runs").rglob("summary.json"):
        recorded = json.loads(summary.read_text())
        assert recorded["status"] == "failed" and "cannot load the model" in recorded["error"]
