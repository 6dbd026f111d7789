"""Sequence mixers: causal, equal to naive references of themselves, honest about their
state size, and with ``last_only`` equal to the last position of the full output."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fmlab.models import GPT, MIXERS, GPTConfig
from fmlab.models.mixers import build_mixer, mixer_info, model_state_size
from fmlab.models.mixers.linear_attention import causal_linear_attention, feature_map
from fmlab.models.mixers.long_conv import fft_causal_conv
from fmlab.models.mixers.ssm import segsum, ssd_last_state, ssd_scan
from fmlab.models.short_conv import ShortConv

NAMES = ["attention", "linear_attention", "ssm", "hyena"]
VARIANTS = [
    ("attention", {}),
    ("attention", {"attn_window": 3}),
    ("linear_attention", {"feature_map": "taylor", "feature_dim": 4}),
    ("linear_attention", {"feature_map": "elu", "feature_dim": 4}),
    ("ssm", {"d_state": 4}),
    ("hyena", {"long_filter": "implicit", "filter_len": 16}),
    ("hyena", {"long_filter": "explicit", "filter_len": 6}),  # shorter than the input
]


pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: 1 thread is fastest


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_mixer(name: str, seed: int = 0, **kw):
    cfg = GPTConfig(d_model=kw.pop("d_model", 16), n_heads=kw.pop("n_heads", 2), mixer=name, **kw)
    return build_mixer(cfg, gen(seed)), cfg


def test_the_four_families_are_registered():
    assert set(NAMES) <= set(MIXERS.names())


@pytest.mark.parametrize(("name", "kw"), VARIANTS)
def test_changing_a_future_input_never_changes_an_earlier_output(name, kw):
    mixer, _ = make_mixer(name, **kw)
    x = torch.randn(2, 12, 16, generator=gen(1))
    y = x.clone()
    y[:, 7] += torch.randn(2, 16, generator=gen(2))
    a, b = mixer(x), mixer(y)
    # FFT convolution mixes positions numerically at the float32 rounding level (~1e-7)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=1e-5)
    assert (a[:, 7] - b[:, 7]).abs().max() > 1e-3


@pytest.mark.parametrize(("name", "kw"), VARIANTS)
def test_last_only_equals_the_last_position(name, kw):
    mixer, _ = make_mixer(name, **kw)
    for T in (1, 5, 12):
        x = torch.randn(3, T, 16, generator=gen(T))
        out = mixer(x, last_only=True)
        assert out.shape == (3, 1, 16)
        torch.testing.assert_close(out, mixer(x)[:, -1:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("short_conv", [0, 4])
def test_every_mixer_runs_in_the_gpt_with_its_hook_sites(name, short_conv):
    cfg = GPTConfig(d_model=16, n_heads=2, n_layers=2, d_mlp=32, mixer=name, short_conv=short_conv)
    model = GPT(cfg, vocab_size=11, seq_len=12, generator=gen())
    sites = model.sites()
    for i in range(2):
        for site in ("resid_pre", "attn_out", "mlp_out", "resid_post"):
            assert f"blocks.{i}.{site}" in sites
    x = torch.randint(0, 11, (2, 12), generator=gen(3))
    torch.testing.assert_close(model(x, last_only=True), model(x)[:, -1:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_init_uses_only_the_given_generator(name):
    state = torch.random.get_rng_state()
    a, _ = make_mixer(name, seed=5)
    b, _ = make_mixer(name, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), n


# ---- naive references ---------------------------------------------------------------------


def test_short_conv_matches_its_formula():
    conv = ShortConv(3, 4, gen())
    x = torch.randn(2, 7, 3, generator=gen(1))
    w, b = conv.weight, conv.bias
    expected = torch.stack(
        [b + sum(w[:, j] * x[:, t - 3 + j] for j in range(4) if t - 3 + j >= 0) for t in range(7)],
        dim=1,
    )
    torch.testing.assert_close(conv(x), expected)


def test_fft_convolution_matches_direct_convolution():
    u = torch.randn(2, 20, 3, generator=gen(1), dtype=torch.float64)
    for K in (20, 7):  # filter as long as the input, and shorter
        h = torch.randn(3, K, generator=gen(K), dtype=torch.float64)
        # conv1d is a cross-correlation: flip the filter, pad on the left only
        direct = F.conv1d(F.pad(u.transpose(1, 2), (K - 1, 0)), h.flip(-1)[:, None], groups=3)
        torch.testing.assert_close(fft_causal_conv(u, h), direct.transpose(1, 2))


def _linear_attention_quadratic(q, k, v):
    scores = (q @ k.transpose(-1, -2)).tril()  # (B, H, T, T), causal
    return (scores @ v) / (scores.sum(-1, keepdim=True) + 1e-6)


def _linear_attention_recurrent(q, k, v):
    B, H, T, Fd = q.shape
    S, z, out = q.new_zeros(B, H, Fd, v.shape[-1]), q.new_zeros(B, H, Fd), []
    for t in range(T):
        S = S + k[:, :, t, :, None] * v[:, :, t, None, :]
        z = z + k[:, :, t]
        num = (q[:, :, t, :, None] * S).sum(-2)
        out.append(num / ((q[:, :, t] * z).sum(-1, keepdim=True) + 1e-6))
    return torch.stack(out, dim=2)


@pytest.mark.parametrize("kind", ["elu", "taylor"])
def test_chunked_linear_attention_matches_quadratic_and_recurrent_forms(kind):
    g = gen(4)
    q, k = (
        feature_map(torch.randn(2, 3, 11, 4, generator=g, dtype=torch.float64), kind) for _ in "qk"
    )
    v = torch.randn(2, 3, 11, 5, generator=g, dtype=torch.float64)
    quadratic = _linear_attention_quadratic(q, k, v)
    torch.testing.assert_close(_linear_attention_recurrent(q, k, v), quadratic)
    for chunk in (4, 11, 64):  # several chunks with padding, one chunk, a chunk > T
        torch.testing.assert_close(causal_linear_attention(q, k, v, chunk), quadratic)


def test_taylor_features_give_the_second_order_expansion_of_exp():
    q, k = torch.randn(2, 6, generator=gen(6), dtype=torch.float64)
    s = q @ k / math.sqrt(6)
    inner = feature_map(q, "taylor") @ feature_map(k, "taylor")
    torch.testing.assert_close(inner, 1 + s + s**2 / 2)
    assert feature_map(q, "taylor").shape[-1] == 1 + 6 + 36


def test_segsum_sums_the_steps_between_two_positions():
    a = torch.tensor([1.0, 2.0, 4.0])
    expected = torch.tensor([[0, -math.inf, -math.inf], [2, 0, -math.inf], [6, 4, 0]])
    torch.testing.assert_close(segsum(a), expected)


def _scan_loop(x, a, B, C):
    b, T, H, P = x.shape
    h, ys = x.new_zeros(b, H, P, B.shape[-1]), []
    for t in range(T):
        h = torch.exp(a[:, t, :, None, None]) * h + x[:, t, :, :, None] * B[:, t, None, None, :]
        ys.append((h * C[:, t, None, None, :]).sum(-1))
    return torch.stack(ys, dim=1), h


@pytest.mark.parametrize("chunk", [4, 11, 64])
def test_chunked_selective_scan_matches_the_step_recurrence(chunk):
    g = gen(7)
    b, T, H, P, N = 2, 11, 3, 2, 5
    x = torch.randn(b, T, H, P, generator=g, dtype=torch.float64)
    a = -5 * torch.rand(b, T, H, generator=g, dtype=torch.float64)  # strong decays included
    B, C = (torch.randn(b, T, N, generator=g, dtype=torch.float64) for _ in "BC")
    y_ref, h_ref = _scan_loop(x, a, B, C)
    y, h = ssd_scan(x, a, B, C, chunk)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(ssd_last_state(x, a, B), h_ref)


def test_selective_scan_survives_decays_that_overflow_a_prefix_sum_form():
    # exp(-Σa) would overflow float32 (Σa = -2000); the chunked form never forms it
    x = torch.ones(1, 40, 1, 1)
    a = torch.full((1, 40, 1), -50.0)
    B = C = torch.ones(1, 40, 1)
    y, _ = ssd_scan(x, a, B, C, chunk=16)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, torch.ones_like(y))  # h_t = e^-50 h_{t-1} + 1 ≈ 1


# ---- what each mixer costs ----------------------------------------------------------------


def test_documented_state_sizes():
    T = 12
    att, cfg = make_mixer("attention")
    assert att.state_size(T) == 2 * T * cfg.n_heads * cfg.head_dim
    win, _ = make_mixer("attention", attn_window=3)
    assert win.state_size(T) == 2 * 3 * cfg.d_model
    lin, _ = make_mixer("linear_attention", feature_dim=4)
    assert lin.state_size(T) == 2 * (1 + 4 + 16) * (8 + 1)  # H · F · (d_v + 1)
    ssm, _ = make_mixer("ssm", d_state=4)
    assert ssm.state_size(T) == 32 * 4 + 3 * (32 + 2 * 4)  # 2D·N + conv buffer
    assert ssm.state_size(T) == ssm.state_size(10 * T)  # constant in the length
    hy, _ = make_mixer("hyena", filter_len=16)
    assert hy.state_size(T) == 16 * (T - 1) + 2 * 48  # past inputs + short conv buffer
    assert hy.state_size(100) == 16 * 15 + 2 * 48  # the filter's reach bounds it


def test_the_scan_state_has_the_size_the_ssm_reports():
    ssm, _ = make_mixer("ssm", d_state=4)
    x = torch.randn(2, 9, 16, generator=gen(8))
    _, xdt, a, Bm, _, _ = ssm._inputs(x)
    h = ssd_last_state(xdt, a, Bm)  # (B, H, P, N)
    assert h[0].numel() == ssm.state_size(9) - ssm.conv.state_size(9) == 2 * 16 * 4


def test_model_state_size_adds_short_convs_and_info_counts_parameters():
    cfg = GPTConfig(d_model=16, n_heads=2, n_layers=2, mixer="ssm", d_state=4, short_conv=4)
    model = GPT(cfg, vocab_size=11, seq_len=12, generator=gen())
    per_block = model.blocks[0].mixer.state_size(12) + 16 * 3
    assert model_state_size(model, 12) == 2 * per_block
    info = mixer_info(model.blocks[0].mixer, 12, name="ssm")
    assert info.params == sum(p.numel() for p in model.blocks[0].mixer.parameters())
    att, _ = make_mixer("attention")  # 4 projections + causal scores and sum, (T+1)/2 keys
    assert att.flops_per_token(12) == 2 * 4 * 16 * 16 + 2 * 2 * 16 * (12 + 1) / 2
