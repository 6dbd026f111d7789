"""Attention runs on SDPA unless its pattern is hooked; both paths agree."""

from __future__ import annotations

import pytest
import torch

from fmlab.hooks import capture, hooked
from fmlab.models import GPT, GPTConfig


def _model(window: int | None = None) -> GPT:
    cfg = GPTConfig(d_model=32, n_heads=4, n_layers=2, d_mlp=64, attn_window=window)
    return GPT(cfg, vocab_size=50, seq_len=16, generator=torch.Generator().manual_seed(0))


def _outputs(model: GPT, tokens: torch.Tensor, eager: bool, last_only: bool):
    for block in model.blocks:
        block.mixer.eager = eager
    model.zero_grad(set_to_none=True)
    out = model(tokens, last_only=last_only)
    out.square().mean().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("last_only", [False, True])
def test_sdpa_and_the_eager_path_agree_on_outputs_and_gradients(window, last_only):
    model = _model(window)
    tokens = torch.randint(0, 50, (4, 16), generator=torch.Generator().manual_seed(1))
    fast, fast_grads = _outputs(model, tokens, eager=False, last_only=last_only)
    exact, exact_grads = _outputs(model, tokens, eager=True, last_only=last_only)
    torch.testing.assert_close(fast, exact, atol=1e-5, rtol=1e-5)
    for a, b in zip(fast_grads, exact_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_a_hooked_pattern_switches_to_the_eager_path_and_can_be_patched():
    model = _model()
    tokens = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(2))
    pattern = capture(model, tokens, ["blocks.0.attn.pattern"])["blocks.0.attn.pattern"]
    assert pattern.shape == (2, 4, 16, 16)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 4, 16))
    assert torch.all(pattern.triu(1) == 0)  # causal
    uniform = torch.tril(torch.ones(16, 16)) / torch.arange(1, 17)[:, None]
    with hooked(model, patch={"blocks.0.attn.pattern": uniform.expand(2, 4, 16, 16)}):
        patched = model(tokens)
    assert not torch.allclose(patched, model(tokens))  # the patch took effect
    assert not model.blocks[0].mixer.hook_pattern._forward_hooks  # and the hook is gone
