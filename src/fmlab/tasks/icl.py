"""In-context regression prompts over simple function classes (Garg et al. 2022).

Garg, Tsipras, Liang & Valiant, "What Can Transformers Learn In-Context? A Case Study
of Simple Function Classes" (NeurIPS 2022) train a transformer on prompts
``x_1, f(x_1), …, x_k, f(x_k)`` with ``f`` drawn afresh for every prompt, and compare its
prediction of ``f(x_i)`` from the first ``i`` examples with classical learners run on
the very same examples (see :mod:`fmlab.tasks.icl_baselines`).

This module generates those prompts. Everything follows the paper's reference code
(github.com/dtsip/in-context-learning) unless a docstring says otherwise:

* inputs ``x ~ N(0, I_d)``; outputs ``y = f(x) + σ ε`` (``σ = noise_std``);
* ``linear``: ``w ~ N(0, I_d)``, ``f(x) = w·x``;
* ``sparse_linear``: the same with all but ``sparsity`` random coordinates of ``w`` zeroed;
* ``decision_tree``: a full binary tree of depth ``tree_depth`` (4) whose internal nodes
  test ``x[c] > 0`` on a random coordinate ``c`` and whose leaves hold ``N(0, 1)`` values;
* ``relu_net``: ``f(x) = sqrt(2/h) · Σ_j a_j relu(u_j·x)`` with ``u_j ~ N(0, I_d)``,
  ``a_j ~ N(0, 1)`` and ``h = hidden_units`` (100) — i.e. output weights ``N(0, 2/h)``,
  which keeps ``E[f(x)²] = d``, the scale of the linear class;
* a curriculum that grows the effective dimension (the input coordinates beyond it are
  zero) and the number of points during training.

All randomness comes from an explicit ``torch.Generator``; tensors are float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field, model_validator

from fmlab.config import Config

FunctionClass = Literal["linear", "sparse_linear", "decision_tree", "relu_net"]
FUNCTION_CLASSES: tuple[str, ...] = ("linear", "sparse_linear", "decision_tree", "relu_net")


class Schedule(Config):
    """One curriculum axis: ``min(start + (step // interval) * inc, end)``.

    ``start=None`` switches the axis off (it sits at ``end`` from step 0); ``end=None``
    means the full value (``n_dims`` or ``n_points``). A ``start`` above the end is
    clamped to it, so Garg's default schedule also works for tiny ``d``.
    """

    start: int | None = Field(default=None, ge=1)
    end: int | None = Field(default=None, ge=1)
    inc: int = Field(default=1, ge=0)
    interval: int = Field(default=2000, ge=1)

    def value(self, step: int, full: int) -> int:
        end = full if self.end is None else min(self.end, full)
        if self.start is None:
            return end
        return min(self.start + (max(step, 0) // self.interval) * self.inc, end)


class ICLCurriculum(Config):
    """Garg et al.'s curriculum: d_eff 5 → d by +1 and k 11 → n_points by +2, every 2000 steps.

    Starting on low-dimensional, short prompts speeds training up a lot in the paper
    (Sec. 4 / App. A.1); evaluation always uses the full dimension and all points.
    """

    dims: Schedule = Schedule(start=5, inc=1, interval=2000)
    points: Schedule = Schedule(start=11, inc=2, interval=2000)


class ICLTaskConfig(Config):
    """What prompts to draw: the function class, ``d = n_dims``, ``k = n_points``, noise."""

    function_class: FunctionClass = "linear"
    n_dims: int = Field(default=20, ge=1)
    n_points: int = Field(default=41, ge=1)
    noise_std: float = Field(default=0.0, ge=0.0)
    sparsity: int = Field(default=3, ge=1)
    tree_depth: int = Field(default=4, ge=1, le=12)
    hidden_units: int = Field(default=100, ge=1)
    curriculum: ICLCurriculum = ICLCurriculum()

    @model_validator(mode="after")
    def _check_sparsity(self) -> ICLTaskConfig:
        if self.function_class == "sparse_linear" and self.sparsity > self.n_dims:
            raise ValueError(f"sparsity ({self.sparsity}) must be <= n_dims ({self.n_dims})")
        return self


@dataclass(frozen=True)
class ICLBatch:
    """A batch of prompts: ``xs (B, k, d)``, ``ys (B, k)``; coordinates >= n_dims_active are 0."""

    xs: torch.Tensor
    ys: torch.Tensor
    n_dims_active: int
    n_points_active: int

    @property
    def batch_size(self) -> int:
        return self.xs.shape[0]


def curriculum_state(cfg: ICLTaskConfig, step: int | None) -> tuple[int, int]:
    """``(dims_active, points_active)`` at training ``step`` (Garg's ``Curriculum``).

    Garg update the curriculum after every step, adding ``inc`` every ``interval`` steps,
    so step ``s`` (0-based) sees ``start + (s // interval) * inc``, capped at ``end``.
    ``step=None`` means no curriculum: the full dimension and all points.
    """
    if step is None:
        return cfg.n_dims, cfg.n_points
    dims = cfg.curriculum.dims.value(step, cfg.n_dims)
    points = cfg.curriculum.points.value(step, cfg.n_points)
    return dims, points


def sample_batch(
    cfg: ICLTaskConfig,
    batch_size: int,
    generator: torch.Generator,
    *,
    step: int | None = None,
) -> ICLBatch:
    """Draw ``batch_size`` prompts, one fresh function each, at curriculum ``step``.

    The draw order (inputs, then the function, then the noise) is fixed, so the same
    generator state gives bit-identical tensors.
    """
    dims, points = curriculum_state(cfg, step)
    xs = torch.randn(batch_size, points, cfg.n_dims, generator=generator)  # (B, k, d)
    xs[:, :, dims:] = 0.0  # Garg zero-pad the coordinates beyond the effective dimension
    ys = evaluate_function(cfg, xs, dims, generator)  # (B, k)
    if cfg.noise_std > 0:
        ys = ys + cfg.noise_std * torch.randn(ys.shape, generator=generator)
    return ICLBatch(xs=xs, ys=ys, n_dims_active=dims, n_points_active=points)


def evaluate_function(
    cfg: ICLTaskConfig, xs: torch.Tensor, dims_active: int, generator: torch.Generator
) -> torch.Tensor:
    """Draw one function per prompt of ``cfg.function_class`` and apply it: ``(B, k)``."""
    if cfg.function_class == "linear":
        w = torch.randn(xs.shape[0], xs.shape[2], generator=generator)  # (B, d)
        return linear_outputs(xs, w)
    if cfg.function_class == "sparse_linear":
        w = sample_sparse_weights(xs.shape[0], xs.shape[2], cfg.sparsity, dims_active, generator)
        return linear_outputs(xs, w)
    if cfg.function_class == "decision_tree":
        return decision_tree_outputs(xs, cfg.tree_depth, dims_active, generator)
    if cfg.function_class == "relu_net":
        return relu_net_outputs(xs, cfg.hidden_units, generator)
    raise ValueError(f"unknown function class {cfg.function_class!r}; known: {FUNCTION_CLASSES}")


def linear_outputs(xs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``y_bi = w_b · x_bi`` for ``xs (B, k, d)``, ``w (B, d)`` → ``(B, k)``."""
    return torch.einsum("bkd,bd->bk", xs, w)


def sample_sparse_weights(
    batch_size: int, n_dims: int, sparsity: int, dims_active: int, generator: torch.Generator
) -> torch.Tensor:
    """``w ~ N(0, I_d)`` with all but ``sparsity`` coordinates zeroed: ``(B, d)``.

    As in Garg's ``SparseLinearRegression`` the support is drawn among the active
    (curriculum) coordinates only, so the function really uses ``sparsity`` inputs.
    """
    w = torch.randn(batch_size, n_dims, generator=generator)
    scores = torch.rand(batch_size, dims_active, generator=generator)
    support = scores.argsort(dim=1)[:, : min(sparsity, dims_active)]  # a random subset
    mask = torch.zeros(batch_size, n_dims, dtype=torch.bool)
    mask.scatter_(1, support, True)
    return w * mask


def decision_tree_outputs(
    xs: torch.Tensor, depth: int, dims_active: int, generator: torch.Generator
) -> torch.Tensor:
    """A random depth-``depth`` tree per prompt applied to ``xs (B, k, d)`` → ``(B, k)``.

    Nodes are stored heap-style (children of ``n`` at ``2n+1``, ``2n+2``); a node goes
    right when ``x[coord] > 0`` (Garg's ``DecisionTree``, thresholds at 0, leaves
    ``N(0, 1)``). Unlike Garg, split coordinates are drawn among the active curriculum
    dimensions only: a split on a zero-padded coordinate would always go left.
    """
    batch, k, _ = xs.shape
    n_internal, n_leaves = 2**depth - 1, 2**depth
    coords = torch.randint(0, dims_active, (batch, n_internal), generator=generator)
    leaves = torch.randn(batch, n_leaves, generator=generator)
    node = torch.zeros(batch, k, dtype=torch.long)  # (B, k) current node of every point
    for _ in range(depth):
        coord = coords.gather(1, node)  # (B, k)
        right = xs.gather(2, coord.unsqueeze(-1)).squeeze(-1) > 0  # (B, k)
        node = 2 * node + 1 + right.long()
    return leaves.gather(1, node - n_internal)


def relu_net_outputs(xs: torch.Tensor, hidden: int, generator: torch.Generator) -> torch.Tensor:
    """A random 2-layer ReLU net per prompt: ``sqrt(2/h) · relu(x U) a`` → ``(B, k)``.

    Garg's ``Relu2nnRegression``: ``U (d, h)`` and ``a (h,)`` standard normal and the
    output scaled by ``sqrt(2/h)`` so that ``E[f(x)^2] = d``, like the linear class.
    """
    batch, _, d = xs.shape
    u = torch.randn(batch, d, hidden, generator=generator)  # (B, d, h)
    a = torch.randn(batch, hidden, generator=generator)  # (B, h)
    h = torch.relu(torch.bmm(xs, u))  # (B, k, h)
    return torch.einsum("bkh,bh->bk", h, a) * math.sqrt(2.0 / hidden)


def eval_prompts(cfg: ICLTaskConfig, n_prompts: int, seed: int) -> ICLBatch:
    """Held-out evaluation prompts: full dimension, all points, fixed by ``seed``.

    A private generator makes the set bit-identical across calls and independent of
    any training stream, so every model and baseline is scored on the same prompts.
    """
    generator = torch.Generator().manual_seed(seed)
    return sample_batch(cfg, n_prompts, generator, step=None)
