"""Mixture of experts: routing conserves tokens, capacity drops exactly the overflow, the
Switch balancing loss equals its formula on a hand-made example, and the layer equals a
naive per-token loop."""

from __future__ import annotations

import math

import pytest
import torch

from fmlab.config import ConfigError
from fmlab.models import GPT, GPTConfig
from fmlab.models.moe import (
    MoE,
    MoEConfig,
    expert_capacity,
    moe_aux_loss,
    route,
    router_stats,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: 1 thread is fastest


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def layer(E=4, k=1, cf=None, alpha=0.0, z=0.0, D=6, Fh=8, seed=0) -> MoE:
    cfg = MoEConfig(n_experts=E, top_k=k, capacity_factor=cf, balance_coef=alpha, z_loss_coef=z)
    return MoE(D, Fh, cfg, "relu", gen(seed))


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("cf", [None, 0.5, 1.0, 1.25])
def test_routing_conserves_tokens_and_weights_are_as_documented(k, cf):
    logits = torch.randn(50, 5, generator=gen(k))
    r = route(logits, k, expert_capacity(50, 5, k, cf))
    counts = torch.zeros(5, dtype=torch.long).index_add_(
        0, r.expert[r.kept], torch.ones_like(r.expert[r.kept])
    )
    dropped = (~r.kept).sum()
    assert int(counts.sum() + dropped) == 50 * k  # routed + dropped = total
    assert int(counts.max()) <= r.capacity
    probs = logits.softmax(-1)
    if k == 1:  # Switch: the weight is the router probability of the chosen expert
        torch.testing.assert_close(r.weight[:, 0], probs.max(-1).values)
    else:  # GShard: the two probabilities renormalised to sum to 1
        torch.testing.assert_close(r.weight.sum(-1), torch.ones(50))
        top2 = probs.topk(2).values
        torch.testing.assert_close(r.weight, top2 / top2.sum(-1, keepdim=True))
    if cf is None:
        assert r.kept.all()


def test_capacity_drops_exactly_the_overflow_in_token_order():
    # 6 tokens prefer expert 0, 2 prefer expert 1; capacity ⌈1.0 · 1 · 8 / 2⌉ = 4
    logits = torch.tensor([[2.0, 0.0]] * 6 + [[0.0, 2.0]] * 2)
    cap = expert_capacity(8, 2, 1, 1.0)
    assert cap == 4
    r = route(logits, 1, cap)
    assert r.kept[:, 0].tolist() == [True] * 4 + [False] * 2 + [True] * 2
    assert r.position[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 0, 1]
    assert router_stats(r, logits).dropped_fraction == pytest.approx(2 / 8)


def test_top2_fills_first_choices_before_second_choices():
    # expert 0 is every token's first choice; capacity ⌈0.75 · 2 · 4 / 2⌉ = 3
    logits = torch.tensor([[3.0, 1.0], [3.0, 1.0], [3.0, 1.0], [1.0, 3.0]])
    r = route(logits, 2, expert_capacity(4, 2, 2, 0.75))
    assert r.capacity == 3
    # expert 0 gets first choices of tokens 0,1,2 (full), so token 3's second choice drops
    assert r.kept.tolist() == [[True, True], [True, True], [True, False], [True, False]]
    # expert 1: token 3's first choice takes slot 0, then second choices of 0 and 1
    assert r.position[:, 1].tolist()[:2] == [1, 2]


def test_switch_balancing_loss_equals_its_formula_on_a_hand_made_example():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    m = layer(E=2, k=1, alpha=0.01, D=2)
    with torch.no_grad():
        m.router.copy_(torch.eye(2))  # logits = x, and softmax(log p) = p
    m(torch.log(probs)[None])
    # f = (3/4, 1/4) tokens per expert, P = mean probs = (0.65, 0.35)
    expected = 0.01 * 2 * (0.75 * 0.65 + 0.25 * 0.35)
    assert float(m.aux_loss.detach()) == pytest.approx(expected, rel=1e-6)
    assert m.stats.load == pytest.approx((0.75, 0.25))
    assert m.stats.load_cv == pytest.approx(0.5)  # std 0.25 / mean 0.5


def test_z_loss_is_the_mean_squared_logsumexp():
    m = layer(E=3, k=1, z=1e-3, D=3)
    with torch.no_grad():
        m.router.copy_(torch.eye(3))
    x = torch.randn(1, 5, 3, generator=gen(2))
    m(x)
    expected = 1e-3 * torch.logsumexp(x[0], -1).pow(2).mean()
    torch.testing.assert_close(m.aux_loss, expected)


def test_balance_statistics_at_the_two_extremes():
    E = 8
    collapsed = route(torch.tensor([[5.0] + [0.0] * (E - 1)] * 16), 1, None)
    s = router_stats(collapsed, torch.zeros(16, E))
    assert s.load_cv == pytest.approx(math.sqrt(E - 1)) and s.load_entropy == pytest.approx(0.0)
    assert s.max_load_ratio == pytest.approx(E)
    balanced = route(torch.eye(E).repeat(2, 1), 1, None)
    s = router_stats(balanced, torch.zeros(16, E))
    assert s.load_cv == pytest.approx(0.0) and s.load_entropy == pytest.approx(1.0)


@pytest.mark.parametrize(("k", "cf"), [(1, None), (1, 0.5), (2, None), (2, 0.75)])
def test_layer_equals_a_naive_per_token_loop(k, cf):
    m = layer(E=4, k=k, cf=cf, seed=3)
    with torch.no_grad():
        m.b_in.normal_(generator=gen(9))  # nonzero biases: empty slots must not leak in
        m.b_out.normal_(generator=gen(10))
    x = torch.randn(2, 5, 6, generator=gen(4))
    y = m(x)
    flat = x.reshape(-1, 6)
    r = route(flat @ m.router, k, expert_capacity(10, 4, k, cf))
    expected = torch.zeros_like(flat)
    for n in range(10):
        for j in range(k):
            if r.kept[n, j]:
                e = r.expert[n, j]
                h = torch.relu(flat[n] @ m.w_in[e] + m.b_in[e, 0])
                expected[n] += r.weight[n, j] * (h @ m.w_out[e] + m.b_out[e, 0])
    torch.testing.assert_close(y.reshape(-1, 6), expected, rtol=1e-5, atol=1e-6)


def test_router_gets_a_gradient_with_top1_and_the_aux_loss():
    m = layer(E=4, k=1, alpha=0.01)
    y = m(torch.randn(2, 5, 6, generator=gen(5)))
    (y.pow(2).sum() + m.aux_loss).backward()
    assert m.router.grad is not None and m.router.grad.abs().sum() > 0


def test_gpt_with_moe_counts_parameters_and_exposes_the_aux_loss():
    D, M, E = 16, 32, 4
    moe = MoEConfig(n_experts=E, top_k=2, balance_coef=0.01)
    cfg = GPTConfig(d_model=D, n_heads=2, d_mlp=M, n_layers=2, moe=moe)
    model = GPT(cfg, vocab_size=11, seq_len=8, generator=gen())
    dense = GPT(cfg.override("moe=null"), vocab_size=11, seq_len=8, generator=gen())
    expert = D * M + M + M * D + D
    per_block_extra = (E - 1) * expert + D * E  # E experts and a router instead of one MLP
    assert model.n_params() == dense.n_params() + 2 * per_block_extra
    assert model.blocks[0].mlp.n_active_params() == D * E + 2 * expert
    model(torch.randint(0, 11, (2, 8), generator=gen(1)))
    aux = moe_aux_loss(model)
    assert aux.requires_grad and float(aux.detach()) == pytest.approx(
        sum(0.01 * b.mlp.stats.balance_loss for b in model.blocks), rel=1e-6
    )
    assert float(moe_aux_loss(dense)) == 0.0
    assert "blocks.1.mlp_out" in model.sites()


def test_last_only_matches_the_full_forward_without_a_capacity_limit():
    # With a capacity, whether a token is dropped depends on the tokens routed before it in
    # the batch, and last_only routes fewer tokens; without one, routing is per token.
    moe = MoEConfig(n_experts=4, top_k=1, capacity_factor=None)
    cfg = GPTConfig(d_model=16, n_heads=2, d_mlp=32, n_layers=2, moe=moe)
    model = GPT(cfg, vocab_size=11, seq_len=8, generator=gen())
    x = torch.randint(0, 11, (3, 8), generator=gen(2))
    torch.testing.assert_close(
        model(x, last_only=True)[:, -1], model(x)[:, -1], atol=1e-5, rtol=1e-4
    )


def test_capacity_never_lets_a_later_token_change_an_earlier_one():
    # slots are filled in token order, so a later token cannot evict an earlier one
    moe = MoEConfig(n_experts=2, top_k=1, capacity_factor=0.5)
    cfg = GPTConfig(d_model=16, n_heads=2, d_mlp=32, n_layers=1, moe=moe)
    model = GPT(cfg, vocab_size=11, seq_len=8, generator=gen())
    x = torch.randint(0, 11, (1, 8), generator=gen(3))
    y = x.clone()
    y[0, 5] = (y[0, 5] + 3) % 11
    torch.testing.assert_close(model(x)[:, :5], model(y)[:, :5])


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="top_k"):
        GPTConfig(moe=MoEConfig()).override("moe.top_k=3")
    with pytest.raises(ValueError, match="top_k=2 exceeds n_experts=1"):
        MoEConfig(n_experts=1, top_k=2)
    with pytest.raises(ValueError, match="moe needs d_mlp"):
        GPTConfig(d_mlp=0, moe=MoEConfig())
