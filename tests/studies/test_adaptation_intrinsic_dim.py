"""``intrinsic-dim``: subspace training θ₀ + Pθ_d (P = I with d = D is ordinary training),
the Fastfood and dense projections, the d90 summary; and both adaptation studies give the
same run in worker processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import hadamard as scipy_hadamard

from fmlab.models import GPT, GPTConfig
from fmlab.studies.intrinsic_dim import QUICK, censored_slope, slope, summarise
from fmlab.studies.intrinsic_dim.subspace import Dense, Fastfood, Subspace, fwht, projection
from fmlab.train import TrainConfig, train


@pytest.mark.parametrize("L", [1, 2, 8, 32, 512])
def test_fwht_is_the_hadamard_matrix(L):
    x = torch.randn(3, L, dtype=torch.float64, generator=torch.Generator().manual_seed(L))
    H = torch.from_numpy(scipy_hadamard(L)).double()
    torch.testing.assert_close(fwht(x), x @ H.T)


@pytest.mark.parametrize("cls", [Dense, Fastfood])
def test_projections_have_unit_columns_and_are_linear(cls):
    g = torch.Generator().manual_seed(0)
    D, d = 3000, 40
    P = cls(D, d, g)
    eye = torch.eye(d, dtype=torch.float32)
    cols = torch.stack([P(eye[i]) for i in range(d)])  # (d, D)
    norms = cols.norm(dim=1)
    assert norms.mean().item() == pytest.approx(1.0, abs=0.03)
    gram = cols @ cols.T - torch.diag(norms**2)
    assert gram.abs().max().item() < 0.15  # nearly orthogonal, as random directions are
    a, b = torch.randn(d, generator=g), torch.randn(d, generator=g)
    torch.testing.assert_close(P(2 * a - b), 2 * P(a) - P(b), atol=1e-4, rtol=1e-4)


def test_fastfood_gradients_are_the_transposed_map():
    P = Fastfood(50, 6, torch.Generator().manual_seed(1))
    M = torch.stack([P(torch.eye(6)[i]) for i in range(6)], 1)  # (50, 6)
    theta = torch.randn(6, requires_grad=True)
    w = torch.randn(50)
    (P(theta) @ w).backward()
    torch.testing.assert_close(theta.grad, M.T @ w, atol=1e-5, rtol=1e-5)


def small_gpt(seed: int = 0) -> GPT:
    cfg = GPTConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, act="gelu")
    return GPT(cfg, vocab_size=11, seq_len=8, generator=torch.Generator().manual_seed(seed))


def lm(model, batch):
    logits = model(batch[:, :-1])
    return torch.nn.functional.cross_entropy(logits.reshape(-1, 11), batch[:, 1:].reshape(-1))


def batches():
    g = torch.Generator().manual_seed(3)
    while True:
        yield torch.randint(0, 11, (4, 8), generator=g)


def test_subspace_at_theta_zero_is_the_model():
    model, x = small_gpt(), torch.randint(0, 11, (2, 8))
    D = sum(p.numel() for p in model.parameters())
    sub = Subspace(model, 64, projection("auto", D, 64, torch.Generator().manual_seed(0), 2**20))
    assert torch.equal(sub(x), model(x))
    assert [n for n, p in sub.named_parameters() if p.requires_grad] == ["theta"]


def test_subspace_training_with_d_equal_D_and_P_identity_is_ordinary_training():
    cfg = TrainConfig(steps=25, lr=3e-3, weight_decay=0.0, eval_every=5)
    plain = small_gpt()
    D = sum(p.numel() for p in plain.parameters())
    sub = Subspace(small_gpt(), D, projection("identity", D, D, torch.Generator(), 0))
    a = list(train(plain, lm, batches(), cfg))
    b = list(train(sub, lm, batches(), cfg))
    for (sa, ma), (sb, mb) in zip(a, b, strict=True):
        assert sa == sb and ma.get("loss", 0) == pytest.approx(mb.get("loss", 0), rel=1e-5)
    for name, w in sub.weights().items():
        torch.testing.assert_close(w, dict(plain.named_parameters())[name], atol=1e-5, rtol=1e-5)
    assert torch.allclose(sub.theta, sub.theta.new_zeros(D)) is False  # it did train


def test_projection_choice_and_its_errors():
    g = torch.Generator()
    assert isinstance(projection("auto", 100, 10, g, dense_max=1000), Dense)
    assert isinstance(projection("auto", 100, 11, g, dense_max=1000), Fastfood)
    with pytest.raises(ValueError, match="needs d = D"):
        projection("identity", 100, 10, g, 0)
    with pytest.raises(ValueError, match="power-of-2"):
        fwht(torch.zeros(6))


def test_d90_summary_slope_and_unreached():
    assert slope([10, 100, 1000], [400, 40, 4]) == pytest.approx(-1.0)
    assert slope([10, 100], [None, 4]) is None
    cfg = QUICK.override("seeds=[0,1]", "checkpoints=[0,1000]")

    def res(d0, d1):
        tried = lambda d: {16: 0.1, 64: 0.5, **({} if d is None else {d: 0.99})}  # noqa: E731
        row = lambda d, acc: {"d90": d, "full_acc": acc, "n_params": 1000, "tried": tried(d)}  # noqa: E731
        return {0: row(d0, 0.9), 1000: row(d1, 1.0)}

    out = summarise(cfg, [res(800, 40), res(400, 20)])
    assert out["d90_fraction_pretrained"] == pytest.approx(np.sqrt(0.04 * 0.02))
    assert out["d90_ratio_pretrained_random"] == pytest.approx(0.05)
    assert out["d90_step0_censored"] == 0
    # a random init that never reached 90 %: d90 > 64, the largest d it tried, so the
    # ratio is at most 40/64 — used as that bound (conservative for "ratio < 1")
    out = summarise(cfg, [res(None, 40), res(400, 20)])
    assert out["d90_step0"] is None and out["d90_step0_censored"] == 1
    assert out["d90_ratio_pretrained_random_by_seed"] == [40 / 64, 20 / 400]
    # the pretrained model unreached: its fraction has no value and no bound is used
    out = summarise(cfg, [res(800, None), res(400, 20)])
    assert out["d90_fraction_pretrained"] is None and out["d90_ratio_pretrained_random"] is None


def test_a_censored_early_checkpoint_enters_the_slope_only_as_a_conservative_bound():
    steps = [10, 100, 1000]
    # unreached at step 10 (below the mean log step): its bound makes the slope less steep
    assert censored_slope(steps, [None, 40, 4], [100, None, None]) == pytest.approx(
        slope(steps, [100, 40, 4])
    )
    assert censored_slope(steps, [None, 40, 4], [100, None, None]) > slope(steps, [400, 40, 4])
    # unreached at the last step: a lower bound there would steepen it, so no value
    assert censored_slope(steps, [400, 40, None], [None, None, 4]) is None


def test_checkpoints_must_be_steps_the_loop_stops_at():
    with pytest.raises(ValueError, match="not pretraining steps"):
        QUICK.override("checkpoints=[0,75,1000]")
    with pytest.raises(ValueError, match="must include 0"):
        QUICK.override("checkpoints=[50,1000]")
