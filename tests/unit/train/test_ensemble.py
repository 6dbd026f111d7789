"""K models trained as one batched ensemble match K separate runs.

Tolerance: batched matmuls reassociate float32 sums, so parameters agree to ~1e-5
relative after a few dozen AdamW steps (not bit for bit); we assert rtol=1e-4,
atol=1e-5 on weights and 1e-5 relative on losses.
"""

import pytest
import torch
import torch.nn.functional as F

from fmlab.models import GPT, GPTConfig
from fmlab.train import GrokfastConfig, TrainConfig, iterate_batches, train
from fmlab.train.ensemble import Ensemble, check_member_configs, train_ensemble

V, T = 13, 4


def model(seed):
    cfg = GPTConfig(d_model=16, n_heads=2, d_mlp=32, n_layers=2)
    return GPT(cfg, vocab_size=V, seq_len=T, generator=torch.Generator().manual_seed(seed))


def data(seed):
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randint(0, V, (40, T), generator=g)
    return (x, x.sum(1) % V), g


def loss_one(m, batch):
    x, y = batch
    return F.cross_entropy(m(x)[:, -1], y)


def loss_many(ens, batch):
    x, y = batch
    logits = ens(x, stacked=True)[:, :, -1]  # (K, B, V)
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)


CFGS = [
    TrainConfig(steps=30, lr=3e-3, weight_decay=0.1, eval_every=10, batch_size=8, grad_clip=1.0),
    TrainConfig(steps=30, lr=1e-3, weight_decay=1.0, eval_every=10, batch_size=8, grad_clip=1.0),
    TrainConfig(
        steps=30,
        lr=3e-3,
        weight_decay=0.1,
        eval_every=10,
        batch_size=8,
        grad_clip=1.0,
        grokfast=GrokfastConfig(alpha=0.9, lamb=2.0),
    ),
]


def separate(k):
    m = model(k)
    (x, y), g = data(k)
    items = list(train(m, loss_one, iterate_batches((x, y), CFGS[k].batch_size, g), CFGS[k]))
    return m, items


def test_batched_members_match_separate_runs():
    models = [model(k) for k in range(3)]
    iters = []
    for k in range(3):
        (x, y), g = data(k)
        iters.append(iterate_batches((x, y), 8, g))
    stacked = (
        tuple(torch.stack(t) for t in zip(*b, strict=True)) for b in zip(*iters, strict=False)
    )
    ens = Ensemble(models)
    items = list(train_ensemble(ens, loss_many, stacked, CFGS))
    assert [s for s, _ in items] == [0, 10, 20, 30]
    for k in range(3):
        ref, ref_items = separate(k)
        for (_, got), (_, want) in zip(items[1:], ref_items[1:], strict=True):
            assert got[k]["loss"] == pytest.approx(want["loss"], rel=1e-5)
            assert got[k]["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-4)
        for name, p in ref.state_dict().items():
            torch.testing.assert_close(ens.member_state(k)[name], p, rtol=1e-4, atol=1e-5, msg=name)


def test_a_diverging_member_is_frozen_and_the_others_are_unaffected():
    bad = TrainConfig(steps=30, lr=1e9, eval_every=10, batch_size=8)
    cfgs = [CFGS[0], bad.model_copy(update={"grad_clip": 1.0, "weight_decay": 0.1})]
    models = [model(0), model(1)]
    (x, y), g0 = data(0)
    (x1, y1), g1 = data(1)
    i0, i1 = iterate_batches((x, y), 8, g0), iterate_batches((x1, y1), 8, g1)
    stacked = (
        tuple(torch.stack(t) for t in zip(*b, strict=True)) for b in zip(i0, i1, strict=False)
    )

    def exploding(ens, batch):
        losses = loss_many(ens, batch)
        scale = torch.stack([torch.tensor(1.0), ens.params["W_E"][1].abs().sum().exp()])
        return losses * scale

    ens = Ensemble(models)
    last = list(train_ensemble(ens, exploding, stacked, cfgs))[-1][1]
    assert "diverged_at_step" in last[1] and "loss" in last[0]
    ref, _ = separate(0)
    for name, p in ref.state_dict().items():
        torch.testing.assert_close(ens.member_state(0)[name], p, rtol=1e-4, atol=1e-5)


def test_members_may_differ_only_in_lr_weight_decay_and_grokfast():
    check_member_configs(CFGS)
    with pytest.raises(ValueError, match="differ in"):
        check_member_configs([CFGS[0], CFGS[0].model_copy(update={"steps": 5})])
    with pytest.raises(ValueError, match="identical parameter"):
        Ensemble(
            [
                model(0),
                GPT(
                    GPTConfig(d_model=8, n_heads=2),
                    vocab_size=V,
                    seq_len=T,
                    generator=torch.Generator(),
                ),
            ]
        )
