"""Prompt generation for in-context regression (Garg et al. 2022): seeded, shaped, scheduled."""

from __future__ import annotations

import math

import pytest
import torch

from fmlab.config import ConfigError
from fmlab.tasks import icl
from fmlab.tasks.icl import (
    ICLTaskConfig,
    curriculum_state,
    eval_prompts,
    sample_batch,
)

CLASSES = ["linear", "sparse_linear", "decision_tree", "relu_net"]


pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: 1 thread is fastest


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("fc", CLASSES)
def test_shapes_dtype_and_full_prompt_without_step(fc):
    cfg = ICLTaskConfig(function_class=fc, n_dims=6, n_points=9)
    batch = sample_batch(cfg, 4, gen(0))
    assert batch.xs.shape == (4, 9, 6) and batch.ys.shape == (4, 9)
    assert batch.xs.dtype == torch.float32 and batch.ys.dtype == torch.float32
    assert (batch.n_dims_active, batch.n_points_active) == (6, 9)
    assert torch.isfinite(batch.ys).all()


@pytest.mark.parametrize("fc", CLASSES)
def test_eval_prompts_are_seeded(fc):
    cfg = ICLTaskConfig(function_class=fc, n_dims=5, n_points=11, noise_std=0.1)
    a, b, c = eval_prompts(cfg, 16, 7), eval_prompts(cfg, 16, 7), eval_prompts(cfg, 16, 8)
    assert torch.equal(a.xs, b.xs) and torch.equal(a.ys, b.ys)
    assert not torch.equal(a.xs, c.xs) and not torch.equal(a.ys, c.ys)


def test_sample_batch_uses_only_the_given_generator():
    cfg = ICLTaskConfig(n_dims=4, n_points=7)
    torch.manual_seed(0)
    a = sample_batch(cfg, 3, gen(1))
    torch.manual_seed(123)  # global state must not matter
    b = sample_batch(cfg, 3, gen(1))
    assert torch.equal(a.xs, b.xs) and torch.equal(a.ys, b.ys)


def test_garg_curriculum_schedule():
    cfg = ICLTaskConfig(n_dims=20, n_points=41)  # Garg's linear-regression setup
    assert curriculum_state(cfg, 0) == (5, 11)
    assert curriculum_state(cfg, 1999) == (5, 11)
    assert curriculum_state(cfg, 2000) == (6, 13)
    assert curriculum_state(cfg, 4000) == (7, 15)
    assert curriculum_state(cfg, 29_999) == (19, 39)
    assert curriculum_state(cfg, 30_000) == (20, 41)
    assert curriculum_state(cfg, 500_000) == (20, 41)
    assert curriculum_state(cfg, None) == (20, 41)


def test_curriculum_is_general_and_can_be_switched_off():
    # Garg's ReLU-net points schedule: 26 → 101 by 5 every 2000 steps
    cfg = ICLTaskConfig(function_class="relu_net", n_points=101).override(
        "curriculum.points.start=26", "curriculum.points.inc=5"
    )
    assert curriculum_state(cfg, 0)[1] == 26
    assert curriculum_state(cfg, 6000)[1] == 41
    assert curriculum_state(cfg, 10**6)[1] == 101
    off = cfg.override("curriculum.dims.start=null", "curriculum.points.start=null")
    assert curriculum_state(off, 0) == (20, 101)
    tiny = ICLTaskConfig(n_dims=3, n_points=7)  # start above the end is clamped
    assert curriculum_state(tiny, 0) == (3, 7)


@pytest.mark.parametrize("fc", CLASSES)
def test_curriculum_truncates_points_and_zero_pads_dims(fc):
    cfg = ICLTaskConfig(function_class=fc, n_dims=20, n_points=41)
    batch = sample_batch(cfg, 8, gen(0), step=2000)
    assert batch.xs.shape == (8, 13, 20) and batch.ys.shape == (8, 13)
    assert (batch.n_dims_active, batch.n_points_active) == (6, 13)
    assert (batch.xs[:, :, 6:] == 0).all()
    assert (batch.xs[:, :, :6] != 0).all()


def test_sparse_linear_has_exactly_s_nonzeros():
    cfg = ICLTaskConfig(function_class="sparse_linear", n_dims=10, n_points=30, sparsity=3)
    batch = sample_batch(cfg, 32, gen(0))
    w = torch.linalg.lstsq(batch.xs.double(), batch.ys.double().unsqueeze(-1)).solution[..., 0]
    assert ((w.abs() > 1e-4).sum(1) == 3).all()  # recovered from the noiseless outputs
    w_direct = icl.sample_sparse_weights(64, 10, 3, 10, gen(1))
    assert ((w_direct != 0).sum(1) == 3).all()
    w_curriculum = icl.sample_sparse_weights(64, 10, 3, 5, gen(2))  # support in active dims
    assert ((w_curriculum != 0).sum(1) == 3).all() and (w_curriculum[:, 5:] == 0).all()


def test_sparsity_above_dims_is_refused():
    with pytest.raises(ConfigError, match="sparsity"):
        ICLTaskConfig(n_dims=4).override(function_class="sparse_linear", sparsity=5)


def test_decision_tree_depends_on_signs_only_and_has_few_leaves():
    xs = torch.randn(16, 50, 6, generator=gen(0))
    ys = icl.decision_tree_outputs(xs, 4, 6, gen(1))
    rescaled = xs.sign() * (xs.abs() * 3 + 0.1)
    assert torch.equal(icl.decision_tree_outputs(rescaled, 4, 6, gen(1)), ys)
    assert max(len(row.unique()) for row in ys) <= 16


def test_relu_net_matches_its_formula():
    xs = torch.randn(3, 5, 4, generator=gen(0))
    g = gen(1)
    u, a = torch.randn(3, 4, 100, generator=g), torch.randn(3, 100, generator=g)
    expect = torch.stack([torch.relu(xs[b] @ u[b]) @ a[b] for b in range(3)]) * math.sqrt(0.02)
    torch.testing.assert_close(icl.relu_net_outputs(xs, 100, gen(1)), expect)


@pytest.mark.parametrize("fc", CLASSES)
def test_output_scale_is_garg(fc):
    # E[f(x)^2] = d for linear and ReLU nets, s for sparse linear, 1 for trees
    cfg = ICLTaskConfig(function_class=fc, n_dims=5, n_points=11)
    expect = {"linear": 5.0, "sparse_linear": 3.0, "decision_tree": 1.0, "relu_net": 5.0}[fc]
    ys = eval_prompts(cfg, 8000, 0).ys
    assert abs(ys.pow(2).mean().item() / expect - 1) < 0.08


def test_noise_is_added_after_the_same_function():
    clean = ICLTaskConfig(n_dims=5, n_points=11)
    noisy = clean.override(noise_std=0.5)
    a, b = eval_prompts(clean, 2000, 3), eval_prompts(noisy, 2000, 3)
    assert torch.equal(a.xs, b.xs)
    assert abs((b.ys - a.ys).std().item() - 0.5) < 0.02
