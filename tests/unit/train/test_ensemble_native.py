"""An ensemble of a model built only from stacked-capable modules runs natively (its own
modules take weights with a leading member dimension); any other model runs under vmap.
Both must give every member exactly what that member computes alone: outputs and
gradients to float32 rounding (1e-5), for shared and per-member inputs."""

import pytest
import torch

from fmlab.models import GPT, GPTConfig
from fmlab.models.layers import runs_stacked
from fmlab.train.ensemble import Ensemble

V, T, K = 11, 5, 3

CASES = {
    "attention, layernorm": ({}, True),
    "no norm, tied, no positions": (
        {"norm": "none", "tied_embeddings": True, "pos_embed": "none"},
        True,
    ),
    "sliding window, gelu, no bias": (
        {"mixer": {"kind": "attention", "window": 2}, "act": "gelu", "bias": False},
        True,
    ),
    "ssm mixer (vmap)": ({"mixer": {"kind": "ssm"}}, False),
    "linear attention (vmap)": ({"mixer": {"kind": "linear_attention"}}, False),
}


def members(options):
    cfg = GPTConfig(d_model=16, n_heads=2, d_mlp=32, n_layers=2, **options)
    return [
        GPT(cfg, vocab_size=V, seq_len=T, generator=torch.Generator().manual_seed(k))
        for k in range(K)
    ]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("last_only", [False, True])
def test_each_member_computes_what_it_computes_alone(case, stacked, last_only):
    options, native = CASES[case]
    models = members(options)
    ens = Ensemble(models)
    assert ens.native is native and runs_stacked(models[0]) is native
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, V, (K, 4, T) if stacked else (4, T), generator=g)
    out = ens(x, stacked=stacked, last_only=last_only)
    want = [m(x[k] if stacked else x, last_only=last_only) for k, m in enumerate(models)]
    assert out.shape == (K, *want[0].shape)
    for k in range(K):
        torch.testing.assert_close(out[k], want[k], rtol=1e-5, atol=1e-5)
    weights = torch.randn(out.shape, generator=g)  # a loss that weighs every output
    (out * weights).sum().backward()
    for k, m in enumerate(models):
        (want[k] * weights[k]).sum().backward()
        for name, p in m.named_parameters():
            got = ens.params[name].grad[k]
            torch.testing.assert_close(got, p.grad, rtol=1e-5, atol=1e-5, msg=f"{case}: {name}")


def test_native_and_vmap_paths_agree():
    models = members({})
    native, mapped = Ensemble(models), Ensemble(models)
    mapped.native = False
    x = torch.randint(0, V, (4, T), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(native(x), mapped(x), rtol=1e-5, atol=1e-5)


def test_a_module_without_stacked_support_sends_the_model_to_vmap():
    model = members({})[0]
    model.blocks[0].mlp.hook_post = torch.nn.GELU()  # a torch module fmlab has not vetted
    assert not runs_stacked(model)
