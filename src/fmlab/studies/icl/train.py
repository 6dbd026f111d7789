"""Training and scoring the in-context regression models of the ``icl`` study.

Training follows Garg et al. 2022: a fresh batch of prompts (a new function per prompt)
every step, at the curriculum's dimension and length for that step, and the squared
error of every prediction in the prompt as the loss. Scoring puts the transformer and
the classical learners on the same seeded prompts (:mod:`fmlab.studies.icl.eval`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fmlab.device import place
from fmlab.models.readout import ReadoutGPT
from fmlab.stats.seeds import CI_HIGH, CI_LOW
from fmlab.store import Run
from fmlab.studies.icl.eval import (
    Point,
    baseline_errors,
    best_lasso_errors,
    compare,
    curve,
    gap_closed,
    holm_family,
    model_errors,
    pooled_ratio,
)
from fmlab.tasks.icl import ICLBatch, ICLTaskConfig, curriculum_state, eval_prompts, sample_batch
from fmlab.train import TrainConfig, train

Errors = dict[str, np.ndarray]


def prompt_batches(
    task: ICLTaskConfig, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless training batches; the n-th one is drawn at curriculum step n."""
    step = 0
    while True:
        batch = sample_batch(task, batch_size, generator, step=step)
        yield batch.xs, batch.ys
        step += 1


def loss_fn(model: ReadoutGPT, batch: tuple[Tensor, Tensor]) -> Tensor:
    xs, ys = batch  # (B, k, d), (B, k)
    return ((model(xs, ys) - ys) ** 2).mean()


def monitor(model: ReadoutGPT, prompts: ICLBatch) -> dict[str, float]:
    """Mean normalized error over all k >= 1, and at k = d and 2d when the prompt has them."""
    err = model_errors(model, prompts).mean(0)  # (k,)
    d = prompts.xs.shape[2]
    out = {"eval_err_mean": float(err[1:].mean())}
    for label, k in (("d", d), ("2d", 2 * d)):
        if k < len(err):
            out[f"eval_err_at_{label}"] = float(err[k])
    return out


def train_model(cfg: Any, task: ICLTaskConfig, train_cfg: TrainConfig, run: Run) -> ReadoutGPT:
    """Train one read-in/read-out GPT on ``task``; log its curves tagged by function class."""
    gen = torch.Generator().manual_seed(cfg.seed)
    model = ReadoutGPT(
        cfg.model, n_dims=task.n_dims, n_points=task.n_points, generator=gen, mark_y=cfg.mark_y
    )
    place(model)
    batch_size = train_cfg.batch_size or 64
    batches = prompt_batches(task, batch_size, gen)
    probe = eval_prompts(task, cfg.n_monitor_prompts, cfg.eval_seed + 1)
    start, cpu = time.perf_counter(), time.process_time()
    checkpoint = run.checkpoint(f"train {task.function_class}")
    loop = train(model, loss_fn, batches, train_cfg, checkpoint=checkpoint)
    for step, metrics in run.track(loop, train_cfg.steps, task.function_class):
        dims, points = curriculum_state(task, step)
        metrics |= monitor(model, probe) | {"dims_active": dims, "points_active": points}
        run.log(step, metrics, function_class=task.function_class)
    timing = {"train_wall_s": time.perf_counter() - start, "train_cpu_s": time.process_time() - cpu}
    run.save_json(f"timing_{task.function_class}", timing)  # not a metric: not reproducible
    run.save_weights(f"model_{task.function_class}", model)
    return model


def evaluate_learners(
    cfg: Any, task: ICLTaskConfig, model: ReadoutGPT, run: Run, *, noisy: bool = False
) -> dict[str, Any]:
    """Errors ``(n_prompts, n_points)`` of the model and every baseline on the same
    prompts; for sparse tasks Lasso (best alpha per k) on the first ``n_lasso_prompts``;
    with ``noisy``, also on the same prompts with output noise ``eval_noise_std``."""
    prompts = eval_prompts(task, cfg.n_eval_prompts, cfg.eval_seed)
    errors: Errors = {"transformer": model_errors(model, prompts)}
    out: dict[str, Any] = {"task": task, "errors": errors}
    if task.function_class == "sparse_linear":
        errors["least_squares"] = baseline_errors("least_squares", prompts)
        n = min(cfg.n_lasso_prompts, cfg.n_eval_prompts)
        subset = ICLBatch(prompts.xs[:n], prompts.ys[:n], task.n_dims, task.n_points)
        out["lasso"], out["lasso_alphas"] = best_lasso_errors(subset, cfg.lasso_alphas)
        return out
    for name in cfg.baselines:
        errors[name] = baseline_errors(name, prompts)
    if noisy and cfg.eval_noise_std is not None:
        sigma = cfg.eval_noise_std
        # Same seed and draw order: the same inputs and functions, plus output noise.
        noisy_prompts = eval_prompts(
            task.model_copy(update={"noise_std": sigma}), cfg.n_eval_prompts, cfg.eval_seed
        )
        out["noisy"] = {
            "transformer": model_errors(model, noisy_prompts),
            "least_squares": baseline_errors("least_squares", noisy_prompts),
            "ridge": baseline_errors("ridge", noisy_prompts, alpha=sigma**2),
        }
    return out


def _points(points: list[Point]) -> list[dict[str, float]]:
    return [{"k": p.k, "estimate": p.estimate, "low": p.low, "high": p.high} for p in points]


def _put(metrics: dict[str, Any], name: str, estimate: float, low: float, high: float) -> None:
    metrics[name], metrics[f"{name}{CI_LOW}"], metrics[f"{name}{CI_HIGH}"] = estimate, low, high


def summarise_linear(cfg: Any, res: dict[str, Any], curves: dict[str, Any]) -> dict[str, Any]:
    """Curves with CIs, comparisons with least squares, k-NN and averaging; noisy medians."""
    errors, d = res["errors"], res["task"].n_dims
    K, B, seed = errors["transformer"].shape[1], cfg.n_resamples, cfg.eval_seed
    m: dict[str, Any] = {"n_dims": d, "n_points": K, "n_eval_prompts": len(errors["transformer"])}
    curves["linear"] = {"d": d, "methods": {}}
    at = {label: k for label, k in (("d", d), ("2d", 2 * d)) if k < K}
    for name, err in errors.items():
        points = curve(err, n_resamples=B, seed=seed)
        curves["linear"]["methods"][name] = _points(points)
        m[f"{name}_err_by_k"] = [p.estimate for p in points]
        for label, k in at.items():
            _put(m, f"{name}_err_at_{label}", points[k].estimate, points[k].low, points[k].high)
    vs_ls = compare(
        errors["transformer"], errors["least_squares"], range(1, K), n_resamples=B, seed=seed
    )
    curves["linear"]["vs_least_squares"] = [c.as_dict() for c in vs_ls]
    for label, k in at.items():
        c = vs_ls[k - 1]
        _put(m, f"diff_vs_ls_at_{label}", c.diff, c.low, c.high)
        m[f"p_vs_ls_at_{label}_holm"] = c.p_holm
    if d >= 2:
        r = pooled_ratio(
            errors["transformer"], errors["least_squares"], range(1, d), n_resamples=B, seed=seed
        )
        _put(m, "ratio_vs_ls_below_d", r.estimate, r.low, r.high)
        t_mean, ls_mean = errors["transformer"].mean(0), errors["least_squares"].mean(0)
        m["ratio_vs_ls_by_k"] = [float(t_mean[k] / ls_mean[k]) for k in range(1, d)]
    weak = [
        c
        for name in ("knn", "averaging")
        for c in compare(
            errors["transformer"],
            errors[name],
            range(d, K),
            alternative="less",
            n_resamples=B,
            seed=seed,
        )
    ]
    if weak:
        weak = holm_family(weak)
        m["beats_weak_max_p"] = max(c.p_holm for c in weak)
        m["beats_weak_n_tests"] = len(weak)
        curves["linear"]["vs_weak"] = [c.as_dict() for c in weak]
    if "noisy" in res:
        m |= summarise_noisy(cfg, res["noisy"], d, curves)
    return m


def summarise_noisy(cfg: Any, noisy: Errors, d: int, curves: dict[str, Any]) -> dict[str, Any]:
    """Mean errors on the noisy prompts and least squares' interpolation peak.

    With output noise, least squares' error has no finite expectation for k = d - 1,
    d, d + 1 (the inverse of a Wishart matrix with too few degrees of freedom), so its
    sample mean there is ruled by a few near-singular prompts: that is the peak of double
    descent. Medians and quartiles show no peak at all. So the peak is measured as the
    sample mean at d over the largest mean at d - 2 and d + 2 (finite expectations), and
    no CI is given for least squares at d.
    """
    m: dict[str, Any] = {"eval_noise_std": cfg.eval_noise_std}
    K, B, seed = noisy["transformer"].shape[1], cfg.n_resamples, cfg.eval_seed
    curves["noisy"] = {"d": d, "sigma": cfg.eval_noise_std, "statistic": "mean", "methods": {}}
    for name, err in noisy.items():
        points = curve(err, n_resamples=B, seed=seed)
        curves["noisy"]["methods"][name] = _points(points)
        m[f"noisy_{name}_err_by_k"] = [p.estimate for p in points]
        m[f"noisy_{name}_median_by_k"] = np.median(err, axis=0).tolist()
        for label, k in (("d", d), ("2d", 2 * d)):
            if k >= K:
                continue
            if name == "least_squares" and label == "d":
                m["noisy_least_squares_err_at_d"] = points[k].estimate  # infinite expectation
            else:
                p = points[k]
                _put(m, f"noisy_{name}_err_at_{label}", p.estimate, p.low, p.high)
    ls = m["noisy_least_squares_err_by_k"]
    if d >= 2 and d + 2 < K:
        m["noisy_ls_peak_ratio"] = ls[d] / max(ls[d - 2], ls[d + 2])
    if 2 * d < K:
        r = pooled_ratio(
            noisy["transformer"], noisy["least_squares"], [2 * d], n_resamples=B, seed=seed
        )
        _put(m, "noisy_ratio_vs_ls_at_2d", r.estimate, r.low, r.high)
    return m


def summarise_sparse(cfg: Any, res: dict[str, Any], curves: dict[str, Any]) -> dict[str, Any]:
    """How far the transformer moves from least squares towards Lasso below d examples."""
    d = res["task"].n_dims
    n = len(res["lasso"])
    sub = {name: err[:n] for name, err in res["errors"].items()} | {"lasso": res["lasso"]}
    B, seed = cfg.n_resamples, cfg.eval_seed
    m: dict[str, Any] = {"sparse_n_prompts": n, "sparse_lasso_alpha_by_k": res["lasso_alphas"]}
    curves["sparse"] = {"d": d, "sparsity": res["task"].sparsity, "methods": {}}
    for name, err in sub.items():
        points = curve(err, n_resamples=B, seed=seed)
        curves["sparse"]["methods"][name] = _points(points)
        m[f"sparse_{name}_err_by_k"] = [p.estimate for p in points]
    if d >= 2:
        below = list(range(1, d))
        gap = float(
            sub["least_squares"][:, below].mean(0).sum() - res["lasso"][:, below].mean(0).sum()
        )
        m["sparse_lasso_advantage"] = gap  # summed over k < d; nothing to close if <= 0
        if gap > 0:
            g = gap_closed(
                sub["transformer"],
                sub["least_squares"],
                sub["lasso"],
                below,
                n_resamples=B,
                seed=seed,
            )
            _put(m, "sparse_gap_closed", g.estimate, g.low, g.high)
        else:
            m["sparse_gap_closed"] = None
    return m


def summarise(cfg: Any, results: dict[str, dict[str, Any]], run: Run) -> dict[str, Any]:
    curves: dict[str, Any] = {}
    metrics = summarise_linear(cfg, results["linear"], curves)
    if "sparse" in results:
        metrics |= summarise_sparse(cfg, results["sparse"], curves)
    run.save_json("curves", curves)
    return metrics
