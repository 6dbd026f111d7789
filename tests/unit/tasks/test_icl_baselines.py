"""In-context baselines (Garg et al. 2022) against closed forms and sklearn, per prefix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.tree import DecisionTreeRegressor

from fmlab.tasks import icl_baselines as ib
from fmlab.tasks.icl import ICLTaskConfig, eval_prompts

pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: 1 thread is fastest


def prompts(n: int, d: int, k: int, noise: float = 0.0, seed: int = 0, fc: str = "linear"):
    cfg = ICLTaskConfig(function_class=fc, n_dims=d, n_points=k, noise_std=noise)
    batch = eval_prompts(cfg, n, seed)
    return batch.xs, batch.ys


def per_prefix(xs, ys, fit_predict) -> np.ndarray:
    """The reference: refit from scratch for every prompt b and prefix i (prediction 0 at i=0)."""
    x, y = xs.double().numpy(), ys.double().numpy()
    out = np.zeros(y.shape)
    for b in range(x.shape[0]):
        for i in range(1, x.shape[1]):
            out[b, i] = fit_predict(x[b, :i], y[b, :i], x[b, i : i + 1], i)
    return out


def close(pred: torch.Tensor, ref: np.ndarray, tol: float = 1e-4) -> None:
    assert pred.shape == ref.shape and pred.dtype == torch.float32
    np.testing.assert_allclose(pred.double().numpy(), ref, atol=tol, rtol=tol)


def test_least_squares_matches_numpy_pinv_and_lstsq():
    xs, ys = prompts(6, 4, 9, noise=0.3)
    close(
        ib.least_squares(xs, ys),
        per_prefix(xs, ys, lambda x, y, q, i: (q @ np.linalg.pinv(x) @ y)[0]),
    )
    lstsq = per_prefix(xs, ys, lambda x, y, q, i: (q @ np.linalg.lstsq(x, y, rcond=None)[0])[0])
    close(ib.least_squares(xs, ys), lstsq)


def test_least_squares_is_exact_from_d_examples_without_noise():
    d = 5
    xs, ys = prompts(500, d, 2 * d + 1)
    err = ib.normalized_squared_error(ib.least_squares(xs, ys), ys, d).mean(0)
    assert err[d:].max() < 1e-8
    assert err[d - 1] > 0.1  # one example short, w is not determined


def test_least_squares_noisy_interpolation_spike_at_k_equals_d():
    # double descent: with noise, the min-norm interpolant's error peaks at i = d
    d = 5
    xs, ys = prompts(3000, d, 2 * d + 1, noise=0.2)
    err = ib.normalized_squared_error(ib.least_squares(xs, ys), ys, d).mean(0)
    assert err[d] > 3 * err[d - 2] and err[d] > 3 * err[2 * d]
    assert err[2 * d] < 0.02  # ≈ σ²(1 + d/(i−d−1))/d = 0.016 at i = 2d


@pytest.mark.parametrize("alpha", [0.01, 1.0])
def test_ridge_matches_sklearn(alpha):
    xs, ys = prompts(6, 4, 9, noise=0.3)

    def fit(x, y, q, i):
        return Ridge(alpha=alpha, fit_intercept=False).fit(x, y).predict(q)[0]

    close(ib.ridge(xs, ys, alpha=alpha), per_prefix(xs, ys, fit))


def test_lasso_matches_sklearn():
    xs, ys = prompts(4, 5, 9, noise=0.1, fc="sparse_linear")

    def fit(x, y, q, i):
        return Lasso(alpha=0.05, fit_intercept=False, max_iter=10_000).fit(x, y).predict(q)[0]

    close(ib.lasso(xs, ys, alpha=0.05), per_prefix(xs, ys, fit))


def test_knn_matches_sklearn():
    xs, ys = prompts(6, 3, 10)

    def fit(x, y, q, i):
        return KNeighborsRegressor(n_neighbors=min(3, i)).fit(x, y).predict(q)[0]

    close(ib.knn(xs, ys), per_prefix(xs, ys, fit))


def test_averaging_matches_closed_form():
    xs, ys = prompts(6, 4, 9)
    close(ib.averaging(xs, ys), per_prefix(xs, ys, lambda x, y, q, i: (q @ (x.T @ y / i))[0]))


def test_decision_tree_matches_sklearn():
    xs, ys = prompts(4, 4, 12, fc="decision_tree")

    def fit(x, y, q, i):
        return DecisionTreeRegressor(max_depth=4, random_state=0).fit(x, y).predict(q)[0]

    close(ib.decision_tree(xs, ys), per_prefix(xs, ys, fit))


def test_gradient_descent_one_step_is_scaled_averaging():
    xs, ys = prompts(6, 4, 9)
    one = ib.gradient_descent(xs, ys, steps=1, lr=0.3, relative_lr=False)
    torch.testing.assert_close(one, 0.3 * ib.averaging(xs, ys), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("relative_lr", [True, False])
def test_gradient_descent_with_many_small_steps_approaches_least_squares(relative_lr):
    d = 4
    xs, ys = prompts(50, d, 3 * d)
    lr = 0.5 if relative_lr else 0.1  # fixed: stable below 2/λ_max ≈ 2/d
    gd = ib.gradient_descent(xs, ys, steps=3000, lr=lr, relative_lr=relative_lr)
    ls = ib.least_squares(xs, ys)
    err = ib.normalized_squared_error(gd, ls, d)  # distance of the two predictions
    assert err[:, 2 * d :].mean() < 1e-5
    assert err[:, d:].median() < 1e-6  # near i = d a few ill-conditioned prompts lag
    few = ib.normalized_squared_error(ib.gradient_descent(xs, ys, steps=2), ys, d)
    exact = ib.normalized_squared_error(gd, ys, d)
    assert exact[:, 2 * d :].mean() < 1e-3 < few[:, 2 * d :].mean()


def test_relu_net_batched_training_equals_one_net_at_a_time():
    xs, ys = prompts(2, 3, 5, fc="relu_net")
    params = ib.init_relu_nets(2, 5, 3, 8, torch.Generator().manual_seed(0))
    pred = ib.train_relu_nets(xs, ys, params, steps=20, lr=5e-3)
    w1, b1, w2, b2 = params
    for b, i in [(0, 1), (0, 4), (1, 2)]:
        net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        with torch.no_grad():
            net[0].weight.copy_(w1[b, i].T)
            net[0].bias.copy_(b1[b, i, 0])
            net[2].weight.copy_(w2[b, i].unsqueeze(0))
            net[2].bias.copy_(b2[b, i].unsqueeze(0))
        opt = torch.optim.Adam(net.parameters(), lr=5e-3)
        for _ in range(20):  # Garg's GDModel: MSE on the prefix, Adam
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(xs[b, :i])[:, 0], ys[b, :i]).backward()
            opt.step()
        torch.testing.assert_close(
            pred[b, i], net(xs[b, i : i + 1])[0, 0].detach(), atol=1e-5, rtol=1e-4
        )
    assert (pred[:, 0] == 0).all()
    for group in (1, 5):  # the block size is only a speed knob
        again = ib.train_relu_nets(xs, ys, params, steps=20, lr=5e-3, group=group)
        torch.testing.assert_close(again, pred, atol=1e-6, rtol=1e-5)


def test_relu_net_learns_and_is_seeded():
    xs, ys = prompts(16, 2, 20, fc="relu_net")
    a = ib.relu_net(xs, ys, hidden=32, steps=100, seed=1)
    assert torch.equal(a, ib.relu_net(xs, ys, hidden=32, steps=100, seed=1))
    err = ib.normalized_squared_error(a, ys, 2)[:, 10:].mean()
    zero = ib.normalized_squared_error(torch.zeros_like(ys), ys, 2)[:, 10:].mean()
    assert err < 0.5 * zero


FAST = ["zero", "least_squares", "ridge", "knn", "averaging", "gd", "decision_tree"]


@pytest.mark.parametrize("name", [*FAST, "lasso", "relu_net"])
def test_baselines_are_causal_and_start_at_zero(name):
    # prediction i may use x_0..x_i and y_0..y_{i-1} only
    xs, ys = prompts(3, 3, 7, noise=0.1)
    fn = ib.BASELINES[name]
    if name == "relu_net":
        fn = lambda x, y: ib.relu_net(x, y, hidden=8, steps=5)  # noqa: E731
    base = fn(xs, ys)
    assert base.shape == ys.shape and (base[:, 0] == 0).all()
    j = 4
    ys2, xs2 = ys.clone(), xs.clone()
    ys2[:, j:] += 10.0
    xs2[:, j + 1 :] += 10.0
    torch.testing.assert_close(fn(xs2, ys2)[:, : j + 1], base[:, : j + 1])


def test_zero_predictor_normalized_error_is_one_on_linear():
    xs, ys = prompts(20_000, 5, 11)
    err = ib.evaluate_baselines(["zero"], xs, ys, normalize=True)["zero"]
    assert abs(err.mean().item() - 1.0) < 0.05


def test_evaluate_baselines_shapes_and_names():
    xs, ys = prompts(5, 3, 7)
    out = ib.evaluate_baselines(FAST, xs, ys)
    assert list(out) == FAST and all(v.shape == (5, 7) for v in out.values())
    norm = ib.evaluate_baselines(["knn"], xs, ys, normalize=True)["knn"]
    torch.testing.assert_close(norm * 3, out["knn"])
    with pytest.raises(KeyError, match="least_squares"):
        ib.evaluate_baselines(["least_sqaures"], xs, ys)
