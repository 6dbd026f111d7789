"""The read-in/read-out GPT of in-context regression is the core GPT, not a fork of it."""

from __future__ import annotations

import pytest
import torch

from fmlab.hooks import hooked
from fmlab.models import GPT, GPTConfig
from fmlab.models.gpt import Block
from fmlab.models.mixers.attention import Attention
from fmlab.models.readout import ReadoutGPT, interleave, x_positions

CFG = GPTConfig(n_layers=2, d_model=16, n_heads=2, d_mlp=32, act="gelu")


pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: 1 thread is fastest


def make(seed: int = 0, **kw) -> ReadoutGPT:
    return ReadoutGPT(
        CFG, n_dims=3, n_points=6, generator=torch.Generator().manual_seed(seed), **kw
    )


def prompts(seed: int = 1, batch: int = 4, k: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, k, 3, generator=g), torch.randn(batch, k, generator=g)


def test_blocks_and_attention_are_the_core_classes():
    model = make()
    assert isinstance(model.gpt, GPT)
    assert len(model.blocks) == 2 and all(type(b) is Block for b in model.blocks)
    assert all(type(b.mixer) is Attention for b in model.blocks)
    outside = {n for n, _ in model.named_modules() if n != "gpt" and not n.startswith("gpt.")}
    assert outside == {"", "read_in", "read_out"}  # nothing but the read-in and read-out


def test_sites_are_the_canonical_ones_of_the_core_model():
    model = make()
    reference = GPT(CFG, vocab_size=5, seq_len=11, generator=torch.Generator().manual_seed(0))
    assert set(model.sites()) == set(reference.sites())
    assert "blocks.1.attn.pattern" in model.sites() and "final" in model.sites()
    inner = set(map(id, model.gpt.modules()))
    assert all(id(hp) in inner for hp in model.sites().values())


def test_forward_is_read_in_then_core_gpt_then_read_out():
    model = make()
    xs, ys = prompts()
    tokens = interleave(xs, ys)[:, :-1]  # (B, 2k-1, d+1)
    h = model.gpt(embeds=tokens @ model.read_in.weight + model.read_in.bias, output="final")
    expected = (h[:, 0::2] @ model.read_out.weight + model.read_out.bias).squeeze(-1)
    torch.testing.assert_close(model(xs, ys), expected)
    assert model(xs, ys).shape == (4, 6)


def test_prediction_i_sees_only_the_examples_before_it():
    model = make()
    xs, ys = prompts()
    base = model(xs, ys)
    ys2 = ys.clone()
    ys2[:, 3] += 5.0  # y_3 may only influence predictions 4, 5
    xs2 = xs.clone()
    xs2[:, 4] += 5.0  # x_4 may only influence predictions 4, 5
    torch.testing.assert_close(model(xs, ys2)[:, :4], base[:, :4])
    torch.testing.assert_close(model(xs2, ys)[:, :4], base[:, :4])
    assert not torch.allclose(model(xs, ys2)[:, 4:], base[:, 4:])


def test_seeded_init_and_honest_parameter_count():
    a, b, c = make(0), make(0), make(1)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    assert not torch.equal(a.read_in.weight, c.read_in.weight)
    names = {n for n, _ in a.named_parameters()}
    assert "gpt.W_E" not in names and "gpt.W_U" not in names  # replaced by read-in/out
    blocks = sum(p.numel() for p in a.blocks.parameters())
    extra = sum(p.numel() for n, p in a.named_parameters() if not n.startswith("gpt.blocks"))
    # read-in (d+1)·D + D, read-out D + 1, positions (2k-1)·D, final LayerNorm 2·D
    D = CFG.d_model
    assert extra == 4 * D + D + D + 1 + 11 * D + 2 * D
    assert a.n_params() == blocks + extra


def test_attention_patterns_through_fmlab_hooks():
    model = make()
    xs, ys = prompts(k=5)
    with hooked(model.gpt, read=["blocks.0.attn.pattern"]) as acts:
        model(xs, ys)
    pattern = acts["blocks.0.attn.pattern"]
    assert pattern.shape == (4, 2, 9, 9)  # 2k - 1 tokens
    torch.testing.assert_close(pattern.sum(-1), torch.ones(4, 2, 9))


def test_bad_shapes_are_refused_with_the_expected_ones():
    model = make()
    xs, ys = prompts()
    with pytest.raises(ValueError, match=r"expected xs \(B, k, 3\)"):
        model(xs[..., :2], ys)
    with pytest.raises(ValueError, match="n_points=6"):
        model(torch.randn(1, 7, 3), torch.randn(1, 7))


def test_interleave_follows_garg_combine():
    xs = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    ys = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    z = interleave(xs, ys)
    assert z.shape == (2, 6, 5)
    torch.testing.assert_close(z[:, 0::2, :4], xs)
    assert (z[:, 0::2, 4] == 0).all()
    torch.testing.assert_close(z[:, 1::2, 0], ys)
    assert (z[:, 1::2, 1:] == 0).all()
    torch.testing.assert_close(x_positions(z)[..., :4], xs)
    flagged = interleave(xs, ys, mark_y=True)
    assert (flagged[:, 1::2, 4] == 1).all() and (flagged[:, 0::2, 4] == 0).all()
