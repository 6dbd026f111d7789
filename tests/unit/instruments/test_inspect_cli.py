"""``fmlab inspect`` on tiny random models built from configs (fast, offline): the run
directory contract, the report, numbers checked against independent computations, and
bad input refused before any run directory exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("transformers")

from fmlab.cli import app
from fmlab.data import load_texts

runner = CliRunner()


def inspect(out: Path, *args: str):
    result = runner.invoke(app, ["inspect", *args, "--out", str(out), "--json"])
    return result, (json.loads(result.stdout) if result.exit_code == 0 else None)


def _artifact(summary) -> dict:
    return json.loads((Path(summary["path"]) / "artifacts" / "inspect.json").read_text())


def test_logit_lens_run_directory_and_report(tmp_path):
    result, summary = inspect(tmp_path, "tiny-gpt2", "-i", "logit-lens", "--set", "max_texts=16")
    assert result.exit_code == 0, result.output
    run = Path(summary["path"])
    assert run.parent == tmp_path / "inspect" and summary["status"] == "completed"
    for name in ("config.json", "metrics.parquet", "summary.json", "artifacts/inspect.json"):
        assert (run / name).is_file(), name
    html = Path(summary["report"]).read_text()
    assert "data:image/png;base64," in html and not re.search(r"src=['\"]https?://", html)
    lens = _artifact(summary)["lens"]
    assert len(lens) == 4  # tiny models have 4 blocks
    # the lens of the last block is the model's own output distribution
    assert lens[-1]["agreement"] == 1.0 and lens[-1]["kl_final"] == pytest.approx(0, abs=1e-9)
    again = runner.invoke(app, ["report", str(run), "--json"])
    assert again.exit_code == 0, again.output


def test_calibration_scores_every_next_token(tmp_path):
    result, summary = inspect(
        tmp_path,
        "tiny-gpt2",
        "-i",
        "calibration",
        "--set",
        "max_texts=16",
        "--set",
        "max_length=40",
    )
    assert result.exit_code == 0, result.output
    m = summary["metrics"]
    # independent count: the same 16 texts, bytes truncated to 40, one target per next byte
    data = load_texts("sentences")
    keep = np.sort(np.random.default_rng(0).permutation(len(data.texts))[:16])
    expected = sum(min(len(data.texts[i].encode()), 40) - 1 for i in keep)
    assert m["n_tokens"] == expected
    assert 0 <= m["ece_before"] <= 1 and 0 <= m["brier_before"] <= 2 and m["temperature"] > 0
    assert m["nll_before"] == pytest.approx(np.log(259), abs=0.5)  # a random model ≈ uniform


def test_cka_is_symmetric_with_unit_diagonal_and_compares_two_models(tmp_path):
    result, summary = inspect(tmp_path, "tiny-llama", "-i", "cka", "--set", "max_texts=12")
    assert result.exit_code == 0, result.output
    M = np.array(_artifact(summary)["cka"])
    assert M.shape == (5, 5)
    np.testing.assert_allclose(M, M.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(M), 1.0, atol=1e-9)
    result, summary = inspect(
        tmp_path, "tiny-llama", "-i", "cka", "--compare", "tiny-opt", "--set", "max_texts=12"
    )
    assert result.exit_code == 0, result.output
    info = _artifact(summary)
    assert np.array(info["cka"]).shape == (5, 5) and info["compare"]["family"] == "opt"
    assert "cka_diagonal_mean" in summary["metrics"]


def test_probe_and_spectra_per_layer(tmp_path):
    result, summary = inspect(tmp_path, "tiny-bert", "-i", "probe", "--set", "label=tense")
    assert result.exit_code == 0, result.output
    m = summary["metrics"]
    assert m["n_classes"] == 2 and m["n_test"] == 50
    assert m["majority_baseline"] == pytest.approx(0.5, abs=0.1)  # 100 past, 100 present
    assert len(_artifact(summary)["probe"]) == 5
    result, summary = inspect(tmp_path, "tiny-bert", "-i", "spectra", "--set", "max_texts=20")
    assert result.exit_code == 0, result.output
    assert 1 <= summary["metrics"]["effective_rank_last"] <= 64


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["tiny-gpt2", "-i", "probe", "--set", "label=mood"], "has no label 'mood'"),
        (["tiny-gpt2", "-i", "ckaa"], "instrument"),
        (["tiny-gpt2", "--data", "nowhere.txt"], "neither a builtin"),
        (["tiny-t5"], "tiny models exist for"),
    ],
)
def test_bad_input_is_refused_before_a_run_starts(tmp_path, args, fragment):
    result = runner.invoke(app, ["inspect", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2 and fragment in re.sub(r"\s+", " ", result.output)
    assert "Traceback" not in result.output
    assert not list(tmp_path.rglob("config.json"))


def test_unsafe_directory_is_refused_before_a_run_starts(tmp_path):
    from fmlab.models.hf import tiny

    model_dir = tmp_path / "model"
    tiny("gpt2").model.save_pretrained(model_dir)
    for f in model_dir.glob("*.safetensors"):
        f.unlink()
    torch.save({"x": torch.zeros(1)}, model_dir / "pytorch_model.bin")
    result = runner.invoke(app, ["inspect", str(model_dir), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "--allow-unsafe-pickle" in result.output
    assert not (tmp_path / "runs").exists()
