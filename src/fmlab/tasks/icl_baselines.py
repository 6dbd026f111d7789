"""Classical in-context learners, scored on the same prompts as the model (Garg et al. 2022).

Garg et al. (NeurIPS 2022, Sec. 3–5) judge a transformer's in-context predictions by
comparing them, prefix length by prefix length, with learners that see the same
examples: least squares (optimal for noiseless linear functions), Lasso (sparse),
3-nearest-neighbours and "averaging" (the weak references), greedy decision trees, and
a 2-layer ReLU net trained by Adam on the prompt. Each baseline here has the signature

    predict(xs (B, k, d), ys (B, k)) -> (B, k)

where output ``i`` predicts ``ys[:, i]`` from examples ``0..i-1`` only, and output 0 is
0 (no examples), exactly as in the paper's reference code. The linear-algebra baselines
are batched over prompts (and, through prefix sums, over prefixes too) and computed in
float64 for accuracy near ``i = d``; the ReLU nets of all prompts and prefixes train
together as stacked tensors; the sklearn ones loop over prompts and prefixes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch

Baseline = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(xs: torch.Tensor, ys: torch.Tensor) -> None:
    if xs.ndim != 3 or ys.shape != xs.shape[:2]:
        raise ValueError(
            f"expected xs (B, k, d) and ys (B, k); got {tuple(xs.shape)}, {tuple(ys.shape)}"
        )


def _prefix_mask(k: int) -> torch.Tensor:
    """``(k, k)`` bool: ``[i, j]`` is True when example ``j`` is visible to query ``i`` (j < i)."""
    return torch.ones(k, k, dtype=torch.bool).tril(diagonal=-1)


def _prefix_stats(xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Exclusive prefix sums ``A_i = Σ_{j<i} x_j x_jᵀ`` (B, k, d, d), ``b_i = Σ_{j<i} y_j x_j``
    (B, k, d) and the counts ``n_i = i`` (k,), in float64."""
    x, y = xs.double(), ys.double()
    outer = x.unsqueeze(-1) * x.unsqueeze(-2)  # (B, k, d, d)
    a = outer.cumsum(dim=1) - outer  # exclusive: examples before i
    xy = x * y.unsqueeze(-1)  # (B, k, d)
    b = xy.cumsum(dim=1) - xy
    return a, b, torch.arange(xs.shape[1], dtype=torch.float64)


def _apply_weights(xs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Predictions ``w_i · x_i`` for per-prefix weights ``w (B, k, d)``, as ``xs.dtype``."""
    return torch.einsum("bkd,bkd->bk", xs.double(), w).to(xs.dtype)


def least_squares(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least squares, ``ŵ_i = X_i⁺ y_i``, for every prefix ``i``.

    Garg's reference learner: Bayes-optimal for noiseless ``w ~ N(0, I)`` (exact once
    ``i >= d``; for ``i < d`` the min-norm interpolant is the posterior mean). With
    noise its error diverges at ``i = d``, where ``X_i`` is square and often nearly
    singular (the interpolation peak of double descent). One batched ``pinv`` per
    prefix length, in float64.
    """
    _check(xs, ys)
    x, y = xs.double(), ys.double()
    out = torch.zeros_like(y)  # (B, k); no examples → predict 0
    for i in range(1, x.shape[1]):
        w = torch.linalg.pinv(x[:, :i]) @ y[:, :i, None]  # (B, d, 1)
        out[:, i] = (x[:, i : i + 1] @ w)[:, 0, 0]
    return out.to(xs.dtype)


def ridge(xs: torch.Tensor, ys: torch.Tensor, *, alpha: float = 0.1) -> torch.Tensor:
    """Ridge regression ``ŵ_i = (X_iᵀX_i + αI)⁻¹ X_iᵀ y_i`` for every prefix.

    The MAP estimate under ``w ~ N(0, I)`` with noise variance ``α`` — the Bayes-optimal
    learner for noisy linear prompts (``α = σ²``). Same objective as sklearn's
    ``Ridge(alpha, fit_intercept=False)``.
    """
    _check(xs, ys)
    a, b, _ = _prefix_stats(xs, ys)
    eye = torch.eye(xs.shape[2], dtype=torch.float64)
    w = torch.linalg.solve(a + alpha * eye, b.unsqueeze(-1)).squeeze(-1)  # (B, k, d)
    return _apply_weights(xs, w)


def averaging(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Garg's "averaging": ``ŵ_i = (1/i) Σ_{j<i} y_j x_j``, predict ``ŵ_i · x_i``.

    One gradient step from 0 on the squared loss; unbiased for ``w`` because
    ``E[x xᵀ] = I``, but with variance that shrinks only like ``d/i``.
    """
    _check(xs, ys)
    _, b, n = _prefix_stats(xs, ys)
    w = b / n.clamp(min=1.0)[None, :, None]  # prefix 0: b = 0 → predict 0
    return _apply_weights(xs, w)


def gradient_descent(
    xs: torch.Tensor,
    ys: torch.Tensor,
    *,
    steps: int = 10,
    lr: float = 1.0,
    relative_lr: bool = True,
) -> torch.Tensor:
    """``steps`` of full-batch gradient descent from ``w = 0`` on ``(1/2i)‖X_i w − y_i‖²``.

    The learner that transformers are argued to emulate layer by layer (von Oswald et al.
    2023; Akyürek et al. 2023); with many small steps it converges to the min-norm
    least-squares solution. The curvature ``L_i = λ_max(X_iᵀX_i / i)`` ranges from about
    ``d`` at ``i = 1`` to about 1 at ``i ≫ d``, so no fixed step suits every prefix:
    with ``relative_lr`` (default) the step is ``lr / L_i`` (the textbook ``1/L`` rule,
    stable for ``lr < 2``); otherwise it is ``lr`` itself (stable for ``lr < 2 / L_i``).
    """
    _check(xs, ys)
    a, b, n = _prefix_stats(xs, ys)
    a, b = a / n.clamp(min=1.0)[None, :, None, None], b / n.clamp(min=1.0)[None, :, None]
    if relative_lr:
        curvature = torch.linalg.eigvalsh(a)[..., -1].clamp(min=1e-12)  # (B, k)
        step = (lr / curvature).unsqueeze(-1)
    else:
        step = torch.full((1, 1, 1), lr, dtype=torch.float64)
    w = torch.zeros_like(b)  # (B, k, d)
    for _ in range(steps):
        w = w - step * ((a @ w.unsqueeze(-1)).squeeze(-1) - b)
    return _apply_weights(xs, w)


def knn(xs: torch.Tensor, ys: torch.Tensor, *, n_neighbors: int = 3) -> torch.Tensor:
    """Mean of the ``n_neighbors`` nearest earlier examples (Euclidean, uniform weights).

    Garg's ``NNModel(n_neighbors=3)``: with fewer than 3 examples, all of them are used.
    """
    _check(xs, ys)
    k = xs.shape[1]
    x = xs.double()
    dist = torch.cdist(x, x)  # (B, k_query, k_example)
    dist = dist.masked_fill(~_prefix_mask(k), math.inf)
    m = min(n_neighbors, max(k - 1, 1))
    near_d, near_j = dist.topk(m, dim=2, largest=False)  # (B, k, m)
    valid = torch.isfinite(near_d).double()  # the first i queries see only i examples
    near_y = ys.double().unsqueeze(1).expand(-1, k, -1).gather(2, near_j)  # (B, k, m)
    pred = (near_y * valid).sum(2) / valid.sum(2).clamp(min=1.0)
    return pred.to(xs.dtype)


def _per_prefix(
    xs: torch.Tensor,
    ys: torch.Tensor,
    fit_predict: Callable[[np.ndarray, np.ndarray, np.ndarray], float],
) -> torch.Tensor:
    """Run ``fit_predict(X_i, y_i, x_i)`` for every prompt and prefix ``i >= 1``."""
    x, y = xs.double().numpy(), ys.double().numpy()
    out = np.zeros(ys.shape)
    for bi in range(x.shape[0]):
        for i in range(1, x.shape[1]):
            out[bi, i] = fit_predict(x[bi, :i], y[bi, :i], x[bi, i : i + 1])
    return torch.from_numpy(out).to(xs.dtype)


def lasso(
    xs: torch.Tensor, ys: torch.Tensor, *, alpha: float = 0.01, max_iter: int = 10_000
) -> torch.Tensor:
    """sklearn ``Lasso(alpha, fit_intercept=False)`` per prompt and prefix.

    Garg's baseline for sparse linear functions (they sweep ``alpha`` over 1e-4…1 and
    report the best); the objective is ``‖y − Xw‖²/(2i) + α‖w‖₁``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    _check(xs, ys)

    def fit_predict(x: np.ndarray, y: np.ndarray, q: np.ndarray) -> float:
        model = Lasso(alpha=alpha, fit_intercept=False, max_iter=max_iter)
        return float(model.fit(x, y).predict(q)[0])

    with warnings.catch_warnings():
        # a handful of tiny prefixes converge slowly; the estimate is still reported
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _per_prefix(xs, ys, fit_predict)


def decision_tree(
    xs: torch.Tensor,
    ys: torch.Tensor,
    *,
    max_depth: int | None = 4,
    sign_inputs: bool = False,
    random_state: int = 0,
) -> torch.Tensor:
    """Greedy CART (sklearn ``DecisionTreeRegressor``) per prompt and prefix.

    Garg's "greedy tree learning" for the decision-tree class, at the true depth 4 or
    unlimited; ``sign_inputs`` fits on ``sign(x)``, the paper's preprocessing that hands
    the learner the known thresholds at 0. ``random_state`` fixes sklearn's tie-breaking.
    """
    from sklearn.tree import DecisionTreeRegressor

    _check(xs, ys)
    if sign_inputs:
        xs = torch.sign(xs)

    def fit_predict(x: np.ndarray, y: np.ndarray, q: np.ndarray) -> float:
        tree = DecisionTreeRegressor(max_depth=max_depth, random_state=random_state)
        return float(tree.fit(x, y).predict(q)[0])

    return _per_prefix(xs, ys, fit_predict)


def relu_net(
    xs: torch.Tensor,
    ys: torch.Tensor,
    *,
    hidden: int = 100,
    steps: int = 100,
    lr: float = 5e-3,
    seed: int = 0,
    chunk: int = 64,
) -> torch.Tensor:
    """A 2-layer ReLU net per prompt and prefix, trained by full-batch Adam on the prefix.

    Garg's ``GDModel`` baseline for the ReLU-net class (reference code: 100 hidden units,
    Adam, lr 5e-3, 100 steps, batches of 100 examples — the whole prefix here, since
    prompts are at most ~100 long), with PyTorch's default ``nn.Linear`` initialisation.
    All ``B × k`` nets train at once as stacked tensors: the summed per-net losses have
    independent gradients, and Adam is elementwise, so each net sees its own Adam.
    ``chunk`` prompts at a time bound the memory; results depend on ``seed`` and ``chunk``.
    """
    _check(xs, ys)
    generator = torch.Generator().manual_seed(seed)
    preds = []
    for s in range(0, xs.shape[0], chunk):
        x, y = xs[s : s + chunk].float(), ys[s : s + chunk].float()
        params = init_relu_nets(x.shape[0], x.shape[1], x.shape[2], hidden, generator)
        preds.append(train_relu_nets(x, y, params, steps=steps, lr=lr))
    return torch.cat(preds).to(xs.dtype)


def init_relu_nets(
    batch: int, k: int, d: int, hidden: int, generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """``(w1 (B, k, d, h), b1 (B, k, 1, h), w2 (B, k, h), b2 (B, k))``: one net per prefix,
    drawn like ``nn.Linear``'s default (uniform in ``±1/sqrt(fan_in)``)."""

    def uniform(*shape: int, fan_in: int) -> torch.Tensor:
        bound = 1.0 / math.sqrt(fan_in)
        return (torch.rand(*shape, generator=generator) * 2 - 1) * bound

    return (
        uniform(batch, k, d, hidden, fan_in=d),
        uniform(batch, k, 1, hidden, fan_in=d),
        uniform(batch, k, hidden, fan_in=hidden),
        uniform(batch, k, fan_in=hidden),
    )


def train_relu_nets(
    xs: torch.Tensor,
    ys: torch.Tensor,
    params: tuple[torch.Tensor, ...],
    *,
    steps: int,
    lr: float,
    group: int = 4,
) -> torch.Tensor:
    """Train net ``(b, i)`` of ``params`` on examples ``j < i`` of prompt ``b`` (mean squared
    loss, Adam) and return its prediction at ``x_i``: ``(B, k)``, 0 at ``i = 0``.

    Nets are handled in blocks of ``group`` consecutive prefixes, each run only on the
    points its nets can see (``j <= i``), which skips about 40 % of the work of running
    every net on every point; the block size does not change the result.
    """
    k = xs.shape[1]
    blocks = [(lo, min(lo + group, k)) for lo in range(0, k, group)]
    tensors = [_block_params(params, lo, hi) for lo, hi in blocks]
    mask = _prefix_mask(k).T.to(xs.dtype)  # (k_point, k_net)
    weight = mask / mask.sum(0, keepdim=True).clamp(min=1.0)  # each net: mean over its examples
    opt = torch.optim.Adam([t for block in tensors for t in block], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = xs.new_zeros(())
        for (lo, hi), block in zip(blocks, tensors, strict=True):
            err = (_block_forward(xs[:, :hi], block) - ys[:, :hi, None]) ** 2  # (B, hi, n)
            loss = loss + (err * weight[:hi, lo:hi]).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():  # net i at its own query x_i
        out = [
            _block_forward(xs[:, :hi], block)[:, lo:hi].diagonal(dim1=1, dim2=2)
            for (lo, hi), block in zip(blocks, tensors, strict=True)
        ]
    return torch.cat(out, dim=1).masked_fill(torch.arange(k) == 0, 0.0)


def _block_params(params: tuple[torch.Tensor, ...], lo: int, hi: int) -> list[torch.Tensor]:
    """Nets ``lo..hi-1`` laid out for one ``baddbmm``: ``w1 (B, d, n*h)``, ``b1 (B, 1, n*h)``,
    ``w2 (B, 1, n, h)``, ``b2 (B, 1, n)``; fresh leaves that require grad."""
    w1, b1, w2, b2 = (p[:, lo:hi] for p in params)
    batch, n, d, hidden = w1.shape
    laid = [
        w1.permute(0, 2, 1, 3).reshape(batch, d, n * hidden),
        b1.reshape(batch, 1, n * hidden),
        w2.reshape(batch, 1, n, hidden),
        b2.reshape(batch, 1, n),
    ]
    return [t.detach().clone().requires_grad_() for t in laid]


def _block_forward(x: torch.Tensor, block: list[torch.Tensor]) -> torch.Tensor:
    """Every net of a block on every point: ``x (B, p, d)`` → ``(B, p, n)``."""
    w1, b1, w2, b2 = block
    n, hidden = w2.shape[2], w2.shape[3]
    hid = torch.relu(torch.baddbmm(b1, x, w1)).view(x.shape[0], x.shape[1], n, hidden)
    return (hid * w2).sum(-1) + b2


def zero(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Always 0: the trivial reference, normalized error ≈ 1 on linear functions."""
    _check(xs, ys)
    return torch.zeros_like(ys)


BASELINES: dict[str, Baseline] = {
    "zero": zero,
    "least_squares": least_squares,
    "ridge": ridge,
    "lasso": lasso,
    "knn": knn,
    "averaging": averaging,
    "gd": gradient_descent,
    "decision_tree": decision_tree,
    "decision_tree_full": partial(decision_tree, max_depth=None),
    "decision_tree_sign": partial(decision_tree, sign_inputs=True),
    "relu_net": relu_net,
}
"""Name → baseline with Garg's settings; bind other hyperparameters with ``functools.partial``."""


def squared_error(pred: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``(pred − y)²`` elementwise, ``(B, k)``."""
    return (pred - ys) ** 2


def normalized_squared_error(pred: torch.Tensor, ys: torch.Tensor, n_dims: int) -> torch.Tensor:
    """``(pred − y)² / d``, ``(B, k)``: Garg's metric, ≈ 1 for the zero predictor on
    linear functions since ``E[(w·x)²] = d``."""
    return squared_error(pred, ys) / n_dims


def evaluate_baselines(
    names: Sequence[str],
    xs: torch.Tensor,
    ys: torch.Tensor,
    *,
    normalize: bool = False,
    baselines: dict[str, Baseline] | None = None,
) -> dict[str, torch.Tensor]:
    """Squared errors ``(B, k)`` of each named baseline on the prompts ``xs``, ``ys``.

    ``normalize`` divides by ``d`` (:func:`normalized_squared_error`); ``baselines``
    replaces the :data:`BASELINES` table (e.g. with ``partial``-bound variants).
    """
    table = BASELINES if baselines is None else baselines
    unknown = [n for n in names if n not in table]
    if unknown:
        raise KeyError(f"unknown baseline(s) {unknown}; known: {sorted(table)}")
    d = xs.shape[2]
    out = {}
    for name in names:
        pred = table[name](xs, ys)
        out[name] = normalized_squared_error(pred, ys, d) if normalize else squared_error(pred, ys)
    return out
