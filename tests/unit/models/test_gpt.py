import pytest
import torch

from fmlab.models import GPT, GPTConfig


def make(seed=0, vocab=11, seq_len=8, **kw):
    return GPT(
        GPTConfig(**kw),
        vocab_size=vocab,
        seq_len=seq_len,
        generator=torch.Generator().manual_seed(seed),
    )


def capture(model, tokens, **kw):
    store = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, o, n=name: store.__setitem__(n, o))
        for name, m in model.sites().items()
    ]
    try:
        model(tokens, **kw)
    finally:
        for h in handles:
            h.remove()
    return store


@pytest.mark.parametrize("norm", ["none", "layernorm"])
def test_every_canonical_site_has_the_documented_shape(norm):
    B, T, D, V, H = 3, 8, 32, 11, 4
    model = make(d_model=D, n_layers=2, n_heads=H, d_mlp=64, norm=norm)
    acts = capture(model, torch.randint(0, V, (B, T)))
    assert acts["embed"].shape == (B, T, D)
    for i in range(2):
        for site in ("resid_pre", "attn_out", "mlp_out", "resid_post"):
            assert acts[f"blocks.{i}.{site}"].shape == (B, T, D)
        assert acts[f"blocks.{i}.attn.pattern"].shape == (B, H, T, T)
        assert acts[f"blocks.{i}.mlp.post"].shape == (B, T, 64)
    assert acts["final"].shape == (B, T, D) and acts["logits"].shape == (B, T, V)
    # residual stream bookkeeping: resid_post = resid_pre + attn_out + mlp_out
    r = acts["blocks.1.resid_pre"] + acts["blocks.1.attn_out"] + acts["blocks.1.mlp_out"]
    torch.testing.assert_close(r, acts["blocks.1.resid_post"])
    torch.testing.assert_close(acts["blocks.0.resid_post"], acts["blocks.1.resid_pre"])


def test_attention_patterns_are_causal_distributions():
    model = make(n_layers=1, d_model=16, n_heads=2)
    pattern = capture(model, torch.randint(0, 11, (2, 8)))["blocks.0.attn.pattern"]
    torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 2, 8))
    assert torch.all(pattern.triu(diagonal=1) == 0)


@pytest.mark.parametrize("window", [None, 3])
def test_changing_a_future_token_never_changes_earlier_outputs(window):
    model = make(n_layers=2, d_model=16, n_heads=2, attn_window=window)
    x = torch.randint(0, 11, (1, 8))
    y = x.clone()
    y[0, 5] = (y[0, 5] + 1) % 11
    a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5], b[:, 5])


def test_sliding_window_limits_attention():
    model = make(n_layers=1, d_model=16, n_heads=2, attn_window=3)
    pattern = capture(model, torch.randint(0, 11, (1, 8)))["blocks.0.attn.pattern"]
    assert torch.all(pattern[..., 7, :5] == 0) and torch.all(pattern[..., 7, 5:] > 0)


@pytest.mark.parametrize("layers", [1, 2])
def test_last_only_equals_the_last_position_of_the_full_forward(layers):
    model = make(n_layers=layers, d_model=32, n_heads=4, norm="none")
    x = torch.randint(0, 11, (5, 6))
    torch.testing.assert_close(model(x, last_only=True), model(x)[:, -1:], rtol=1e-5, atol=1e-5)


def test_same_generator_seed_gives_identical_weights_and_global_rng_is_untouched():
    state = torch.random.get_rng_state()
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (n, p), (_, q), (_, r) in zip(
        a.state_dict().items(), b.state_dict().items(), c.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), n
        if p.dim() >= 2:
            assert not torch.equal(p, r), n


def test_options_tied_attention_only_gelu():
    tied = make(tied_embeddings=True)
    assert tied.W_U is None
    x = torch.randint(0, 11, (2, 4))
    final = tied(x, output="final")
    torch.testing.assert_close(tied(x), final @ tied.W_E.T)
    attn_only = make(d_mlp=0, n_layers=2)
    assert attn_only.blocks[0].mlp is None and "blocks.0.mlp_out" not in attn_only.sites()
    assert make(act="gelu")(x).shape == (2, 4, 11)


def test_embeds_input_and_context_limit():
    model = make(d_model=16, n_heads=2, seq_len=4)
    out = model(embeds=torch.randn(2, 4, 16), output="final")
    assert out.shape == (2, 4, 16)
    with pytest.raises(ValueError, match="exceeds the context"):
        model(torch.zeros(1, 5, dtype=torch.long))


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="not divisible"):
        GPTConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="mixer 'mamba9' is not one of"):
        GPTConfig(mixer="mamba9")


def test_parameter_count_matches_a_closed_form():
    D, M, V, T, H = 128, 512, 60, 3, 4
    model = make(d_model=D, d_mlp=M, vocab=V, seq_len=T, n_heads=H, norm="none")
    attn = 4 * D * D + 3 * D  # q, v, o biases; keys have none
    mlp = D * M + M + M * D + D
    assert model.n_params() == V * D + T * D + attn + mlp + D * V
    assert model.n_params(embeddings=False) == attn + mlp
