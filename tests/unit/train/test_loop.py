import math

import pytest
import torch
import torch.nn.functional as F

from fmlab.train import (
    Diverged,
    GrokfastConfig,
    TrainConfig,
    iterate_batches,
    lr_at,
    train,
)
from fmlab.train.grokfast import GrokfastEMA


def regression_problem(seed=0, n=64, d=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = x @ torch.randn(d, 1, generator=g)
    model = torch.nn.Linear(d, 1)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g))
        model.bias.zero_()
    return model, (x, y), g


def mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


def run_loop(cfg, seed=0):
    model, data, g = regression_problem(seed)
    items = list(train(model, mse, iterate_batches(data, cfg.batch_size, g), cfg))
    return model, items


def test_yields_at_zero_every_eval_and_at_the_end():
    _, items = run_loop(TrainConfig(steps=25, lr=0.05, eval_every=10))
    assert [s for s, _ in items] == [0, 10, 20, 25]
    assert "loss" not in items[0][1] and all("loss" in m for _, m in items[1:])
    assert items[-1][1]["loss"] < items[1][1]["loss"]


def test_same_seed_same_numbers_bit_for_bit():
    cfg = TrainConfig(steps=30, lr=0.05, eval_every=5, batch_size=16, weight_decay=0.1)
    (a, ia), (b, ib) = run_loop(cfg, seed=3), run_loop(cfg, seed=3)
    assert ia == ib
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    _, ic = run_loop(cfg, seed=4)
    assert ic != ia


def test_matches_a_bare_adamw_loop_exactly():
    cfg = TrainConfig(steps=20, lr=0.01, weight_decay=0.5, betas=(0.9, 0.98), eval_every=20)
    model, _ = run_loop(cfg)
    ref, (x, y), _ = regression_problem(0)
    opt = torch.optim.AdamW(ref.parameters(), lr=0.01, betas=(0.9, 0.98), weight_decay=0.5)
    for _ in range(20):
        opt.zero_grad()
        mse(ref, (x, y)).backward()
        opt.step()
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_non_finite_loss_raises_diverged_with_the_step():
    model, data, g = regression_problem()
    cfg = TrainConfig(steps=500, lr=1e6, eval_every=1000, betas=(0.0, 0.0))

    def exploding(model, batch):
        return mse(model, batch) * torch.exp(model.weight.abs().sum())

    with pytest.raises(Diverged) as e:
        for _ in train(model, exploding, iterate_batches(data, None, g), cfg):
            pass
    assert 0 <= e.value.step < 500 and not math.isfinite(e.value.loss)


def test_gradient_clipping_reports_the_pre_clip_norm():
    _, items = run_loop(TrainConfig(steps=4, lr=1e-3, eval_every=1, grad_clip=1e-3))
    assert all(m["grad_norm"] > 1e-3 for _, m in items[1:])


def test_warmup_and_schedules():
    cfg = TrainConfig(steps=110, lr=1.0, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(cfg, 0) == pytest.approx(0.1) and lr_at(cfg, 9) == pytest.approx(1.0)
    assert lr_at(cfg, 10) == pytest.approx(1.0)
    assert lr_at(cfg, 60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(cfg, 110) == pytest.approx(0.1)
    lin = cfg.override("schedule=linear")
    assert lr_at(lin, 60) == pytest.approx(0.55)
    assert lr_at(cfg.override("schedule=constant"), 100) == 1.0


def test_minibatches_cover_each_epoch_once():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(12)
    it = iterate_batches((x,), 4, g)
    epoch = torch.cat([next(it)[0] for _ in range(3)])
    assert sorted(epoch.tolist()) == list(range(12))
    full = next(iterate_batches((x,), None, g))[0]
    assert full is x


def test_grokfast_ema_follows_its_recurrence():
    p = torch.nn.Parameter(torch.zeros(3))
    f = GrokfastEMA([p], alpha=0.5, lamb=2.0)
    g1, g2 = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 0.0, -1.0])
    p.grad = g1.clone()
    f()
    torch.testing.assert_close(p.grad, g1 + 2.0 * g1)  # EMA_1 = g1
    p.grad = g2.clone()
    f()
    torch.testing.assert_close(p.grad, g2 + 2.0 * (0.5 * g1 + 0.5 * g2))


def test_grokfast_option_changes_the_trajectory():
    base = TrainConfig(steps=10, lr=0.01, eval_every=10)
    _, a = run_loop(base)
    _, b = run_loop(base.model_copy(update={"grokfast": GrokfastConfig(alpha=0.9, lamb=1.0)}))
    assert a[-1][1]["loss"] != b[-1][1]["loss"]


def test_breaking_out_stops_training():
    model, data, g = regression_problem()
    before = model.weight.detach().clone()
    loop = train(model, mse, iterate_batches(data, None, g), TrainConfig(steps=1000, eval_every=1))
    for step, _ in loop:
        if step == 3:
            break
    after3 = model.weight.detach().clone()
    assert not torch.equal(before, after3)
    loop.close()
    assert torch.equal(model.weight, after3)
