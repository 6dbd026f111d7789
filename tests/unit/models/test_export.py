"""fmlab GPT ⇄ transformers GPT2LMHeadModel: the same logits both ways (fp32, ≤ 1e-5),
through a directory written by ``fmlab export`` that transformers and ``fmlab inspect``
read; configs that do not map exactly are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fmlab.cli import app
from fmlab.errors import UserInputError
from fmlab.models import GPT, GPTConfig
from fmlab.models.hf.export import from_hf, load_gpt, save_hf, to_hf
from fmlab.store import Run

V, T = 37, 16
CONFIGS = {
    "relu-untied": dict(act="relu"),
    "gelu-tied": dict(act="gelu", tied_embeddings=True),
    "no-bias": dict(act="gelu", bias=False),
    "3-layers-wide-mlp": dict(n_layers=3, d_mlp=96, n_heads=2),
}


def random_gpt(seed: int = 0, **kw) -> GPT:
    """A GPT whose LayerNorm gains/biases and linear biases are not at their init (an
    exporter that forgot one of them would otherwise still pass)."""
    cfg = GPTConfig(**{"n_layers": 2, "d_model": 32, "n_heads": 4, "d_mlp": 64, **kw})
    gen = torch.Generator().manual_seed(seed)
    model = GPT(cfg, vocab_size=V, seq_len=T, generator=gen)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name or name.endswith("bias"):
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return model.eval()


def tokens(seed: int = 1, batch: int = 5) -> torch.Tensor:
    return torch.randint(0, V, (batch, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kw", CONFIGS.values(), ids=CONFIGS)
def test_exported_logits_equal_fmlab_logits_and_back(kw):
    model = random_gpt(**kw)
    x = tokens()
    with torch.no_grad():
        ours = model(x)
        hf = to_hf(model)
        theirs = hf(input_ids=x).logits
        again = from_hf(hf)(x)
    assert type(hf).__name__ == "GPT2LMHeadModel"
    assert (ours - theirs).abs().max().item() <= 1e-5
    assert (ours - again).abs().max().item() <= 1e-5
    assert sum(p.numel() for p in hf.parameters()) >= model.n_params()


def test_a_directory_round_trip_through_transformers(tmp_path):
    from transformers import AutoModelForCausalLM

    model = random_gpt(act="gelu", bias=False)
    save_hf(model, tmp_path / "hf")
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert not list((tmp_path / "hf").glob("*.bin"))  # never pickle
    x = tokens(2)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True).eval()
    back = load_gpt(tmp_path / "hf")
    with torch.no_grad():
        assert (model(x) - hf(input_ids=x).logits).abs().max().item() <= 1e-5
        assert (model(x) - back(x)).abs().max().item() <= 1e-5
    assert back.cfg.bias is False and back.cfg.act == "gelu"


def test_a_key_bias_is_dropped_exactly_and_a_trained_bias_is_kept():
    """GPT-2 has a key bias; fmlab has none, because softmax ignores q·b_k: loading a
    GPT-2 with one gives the same logits. Other biases, once non-zero, force bias=True."""
    model = random_gpt(bias=False)
    hf = to_hf(model)
    D = model.cfg.d_model
    x = tokens(3)
    with torch.no_grad():
        hf.transformer.h[0].attn.c_attn.bias[D : 2 * D] = torch.randn(D)
        assert from_hf(hf).cfg.bias is False
        assert (from_hf(hf)(x) - hf(input_ids=x).logits).abs().max().item() <= 1e-5
        hf.transformer.h[1].mlp.c_fc.bias += 0.1
        back = from_hf(hf)
        assert back.cfg.bias is True
        assert (back(x) - hf(input_ids=x).logits).abs().max().item() <= 1e-5


REFUSED = {
    "ssm": (dict(mixer="ssm"), "mixer is ssm"),
    "window": (dict(attn_window=4), "windowed"),
    "no-norm": (dict(norm="none"), "norm=none"),
    "no-positions": (dict(pos_embed="none"), "pos_embed=none"),
    "attention-only": (dict(d_mlp=0), "attention-only"),
    "moe": (dict(moe={"n_experts": 2}), "mixture of experts"),
    "short-conv": (dict(short_conv=3), "short_conv=3"),
    "d_head": (dict(d_head=2), "n_heads·d_head = 8"),
}


@pytest.mark.parametrize(("kw", "says"), REFUSED.values(), ids=REFUSED)
def test_configs_that_do_not_map_exactly_are_refused_in_one_line(kw, says):
    cfg = GPTConfig(**{"n_layers": 1, "d_model": 16, "n_heads": 4, "d_mlp": 32, **kw})
    model = GPT(cfg, vocab_size=V, seq_len=T, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UserInputError, match="does not map exactly onto GPT-2") as e:
        to_hf(model)
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("activation_function", "gelu_new"), ("layer_norm_epsilon", 1e-6),
     ("scale_attn_by_inverse_layer_idx", True)],
)  # fmt: skip
def test_a_gpt2_that_fmlab_cannot_compute_exactly_is_refused(field, value):
    hf = to_hf(random_gpt())
    setattr(hf.config, field, value)
    with pytest.raises(UserInputError, match=f"does not map exactly onto fmlab's GPT: {field}"):
        from_hf(hf)


def fake_run(root: Path, **models: GPT) -> Path:
    """A run directory as a study leaves it: config.json with a GPT `model`, weights."""
    cfg = next(iter(models.values())).cfg
    run = Run.start(root, "toy", "abc123", {"model": cfg.model_dump(mode="json")})
    for name, model in models.items():
        run.save_weights(name, model)
    return run.path


def test_fmlab_export_then_fmlab_inspect_the_directory(tmp_path):
    model = random_gpt(act="gelu")
    run_dir = fake_run(tmp_path / "runs", base_seed0=model)
    cli = CliRunner()
    result = cli.invoke(app, ["export", str(run_dir), str(tmp_path / "hf"), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["architectures"] == ["GPT2LMHeadModel"] and info["n_layer"] == 2
    source = json.loads((tmp_path / "hf" / "config.json").read_text())["fmlab_source"]
    assert source["weights"] == "base_seed0" and source["run_id"] == "abc123"
    x = tokens(4)
    with torch.no_grad():
        assert (load_gpt(tmp_path / "hf")(x) - model(x)).abs().max().item() <= 1e-5
    # texts longer than the model's 16 positions are cut to them
    text = tmp_path / "seqs.txt"
    text.write_text(
        "\n".join(" ".join(f"t{(7 * i + j) % V}" for j in range(40)) for i in range(12))
    )
    args = ["inspect", str(tmp_path / "hf"), "--data", str(text), "--out", str(tmp_path / "runs")]
    result = cli.invoke(app, [*args, "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed" and summary["metrics"]["n_layers"] == 2
    assert summary["metrics"]["n_rows"] == 12 * T


def test_fmlab_export_refusals_are_one_line(tmp_path):
    cli = CliRunner()
    two = fake_run(tmp_path / "a", m1=random_gpt(), m2=random_gpt(1))
    result = cli.invoke(app, ["export", str(two), str(tmp_path / "hf")])
    assert result.exit_code == 2 and "choose one with --weights: m1, m2" in result.output
    result = cli.invoke(app, ["export", str(two), str(tmp_path / "hf"), "-w", "m3"])
    assert result.exit_code == 2 and "no GPT weights 'm3'" in result.output
    cfg = GPTConfig(n_layers=1, d_model=16, n_heads=4, d_mlp=32, norm="none")
    ssm = GPT(cfg, vocab_size=V, seq_len=T, generator=torch.Generator().manual_seed(0))
    result = cli.invoke(app, ["export", str(fake_run(tmp_path / "b", m=ssm)), str(tmp_path / "x")])
    assert result.exit_code == 2 and "norm=none" in result.output
    assert not (tmp_path / "x").exists()
    result = cli.invoke(app, ["export", str(tmp_path / "nothing"), str(tmp_path / "y")])
    assert result.exit_code == 2 and "not a run directory" in result.output
