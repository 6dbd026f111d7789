"""Train K same-shaped models as one batched computation.

Small-model science is dominated by Python and kernel-launch overhead: one step of a
tiny transformer is a few dozen small matmuls. Stacking the K models' weights along a
new leading dimension and running them with ``torch.func.vmap`` turns K small matmuls
into one batched matmul. The members stay mathematically independent: member k sees
its own batches, its own learning rate, weight decay and Grokfast amplification, and
its own gradient-norm clipping, so its trajectory equals that of a separate run up to
floating-point reassociation (the tests state the tolerance).

    ensemble = Ensemble(models)                      # stacks the weights
    for step, per_member in train_ensemble(ensemble, loss_fn, batches, cfgs):
        ...                                          # per_member[k] = metrics of model k

``loss_fn(call, batch) -> (K,) losses`` receives ``call``, the vmapped model: ``call(x)``
broadcasts one input to every member, ``call(x, stacked=True)`` gives member k ``x[k]``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import stack_module_state, vmap

from fmlab.checkpoint import LoopCheckpoint
from fmlab.device import place
from fmlab.models.layers import runs_stacked
from fmlab.train.config import TrainConfig
from fmlab.train.loop import save_if_due, skip_batches
from fmlab.train.memory import keep_freed_memory
from fmlab.train.precision import Precision
from fmlab.train.schedule import lr_at

# Keys that may differ between members; everything else in TrainConfig must agree.
MEMBER_KEYS = ("lr", "weight_decay", "grokfast")


class Ensemble:
    """K models of one architecture with their parameters stacked: (K, *shape)."""

    def __init__(self, models: Sequence[nn.Module]):
        if not models:
            raise ValueError("an ensemble needs at least one model")
        shapes = [{n: p.shape for n, p in m.named_parameters()} for m in models]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError("ensemble members must have identical parameter names and shapes")
        keep_freed_memory()  # without it a 16-member step at d_model 128 ran 1.8x slower
        params, buffers = stack_module_state(list(models))
        self.params = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
        self.buffers = buffers
        self.size = len(models)
        self._base = copy.deepcopy(models[0]).to("meta")
        self._slots = _slots(self._base)
        # Native: the model's own modules take the stacked weights (one batched matmul per
        # projection); otherwise vmap batches each operation, at a cost per operation.
        self.native = runs_stacked(self._base)

    def __call__(self, *args: Any, stacked: bool = False, **kwargs: Any) -> Tensor:
        """Run every member: outputs stacked along dim 0, (K, …)."""
        if self.native:
            # Shared inputs (tensors in args unless ``stacked``, tensors in kwargs always)
            # are expanded to every member, as vmap's unbatched inputs are.
            def each(a: Any, share: bool) -> Any:
                return a.expand(self.size, *a.shape) if share and isinstance(a, Tensor) else a

            args = tuple(each(a, not stacked) for a in args)
            kwargs = {k: each(v, True) for k, v in kwargs.items()}
            with _swapped(self._slots, {**self.params, **self.buffers}):
                return self._base(*args, **kwargs)

        def one(params: dict, buffers: dict, *a: Any) -> Tensor:
            with _swapped(self._slots, {**params, **buffers}):
                return self._base(*a, **kwargs)

        in_dims = (0, 0, *((0 if stacked else None) for _ in args))
        return vmap(one, in_dims=in_dims, randomness="error")(self.params, self.buffers, *args)

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member k's weights as an ordinary state dict (detached copies)."""
        state = {n: p[k].detach().clone() for n, p in self.params.items()}
        state.update({n: b[k].clone() for n, b in self.buffers.items()})
        return state

    def load_into(self, k: int, model: nn.Module) -> nn.Module:
        model.load_state_dict(self.member_state(k))
        return model


Slot = tuple[dict[str, Any], str, str]  # (a module's _parameters or _buffers, key, full name)


def _slots(module: nn.Module) -> list[Slot]:
    """Where each parameter and buffer lives, tied aliases included (so a weight shared by
    two modules is replaced in both)."""
    out: list[Slot] = []
    seen: dict[int, str] = {}
    for full, p in module.named_parameters(remove_duplicate=False):
        owner, _, key = full.rpartition(".")
        name = seen.setdefault(id(p), full)
        out.append((module.get_submodule(owner)._parameters, key, name))
    for full, b in module.named_buffers(remove_duplicate=False):
        owner, _, key = full.rpartition(".")
        name = seen.setdefault(id(b), full)
        out.append((module.get_submodule(owner)._buffers, key, name))
    return out


class _swapped:
    """Put one member's (batched) tensors into the meta module for one call, then put
    the placeholders back — what ``torch.func.functional_call`` does, without walking the
    module tree on every step (that walk was a fifth of a launch-bound ensemble step)."""

    def __init__(self, slots: list[Slot], tensors: dict[str, Tensor]):
        self.slots, self.tensors = slots, tensors
        self.saved: list[Any] = []

    def __enter__(self) -> None:
        self.saved = [store[key] for store, key, _ in self.slots]
        for store, key, name in self.slots:
            store[key] = self.tensors[name]

    def __exit__(self, *exc: Any) -> None:
        for (store, key, _), old in zip(self.slots, self.saved, strict=True):
            store[key] = old


def check_member_configs(cfgs: Sequence[TrainConfig]) -> None:
    """Members may differ in lr, weight decay and Grokfast; nothing else."""
    shared = [c.model_dump(exclude=set(MEMBER_KEYS)) for c in cfgs]
    if any(s != shared[0] for s in shared[1:]):
        diff = sorted(k for k in shared[0] if any(s[k] != shared[0][k] for s in shared))
        raise ValueError(f"ensemble members differ in {diff}; only {MEMBER_KEYS} may differ")
    alphas = {c.grokfast.alpha for c in cfgs if c.grokfast is not None}
    if len(alphas) > 1:
        raise ValueError("ensemble members must share the Grokfast alpha (lambda may differ)")


class BatchedAdamW:
    """AdamW over stacked parameters with a per-member learning rate and weight decay.

    Follows ``torch.optim.AdamW``'s multi-tensor update step by step (decoupled decay,
    lerp of the first moment, bias corrections), so members with equal hyperparameters
    reproduce torch's arithmetic.
    """

    def __init__(self, params: list[Tensor], cfgs: Sequence[TrainConfig]):
        self.params = params
        self.betas, self.eps = cfgs[0].betas, cfgs[0].eps
        self.wd = [c.weight_decay for c in cfgs]
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.step_count = 0

    def _per_member(self, values: Sequence[float]) -> list[Tensor]:
        """One (K, 1, …) factor per parameter, shaped to broadcast over it."""
        like = self.params[0]
        column = torch.tensor(values, dtype=torch.float64).to(like.device, like.dtype)
        shaped = {p.dim(): column.view((len(values),) + (1,) * (p.dim() - 1)) for p in self.params}
        return [shaped[p.dim()] for p in self.params]

    @torch.no_grad()
    def step(self, lrs: Sequence[float]) -> None:
        """One update of every member, as ``torch._foreach_*`` calls over all parameters
        (the multi-tensor path: a dozen kernel launches per step, not a dozen per tensor)."""
        self.step_count += 1
        b1, b2 = self.betas
        bc1, bc2_sqrt = 1 - b1**self.step_count, math.sqrt(1 - b2**self.step_count)
        params, grads = self.params, [p.grad for p in self.params]
        uniform = len(set(lrs)) == 1 and len(set(self.wd)) == 1
        if uniform:
            torch._foreach_mul_(params, 1 - lrs[0] * self.wd[0])
        else:
            torch._foreach_mul_(
                params, self._per_member([1 - lr * wd for lr, wd in zip(lrs, self.wd, strict=True)])
            )
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, self.eps)
        if uniform:
            torch._foreach_addcdiv_(params, self.m, denom, value=-lrs[0] / bc1)
        else:
            steps = torch._foreach_div(self.m, denom)
            torch._foreach_mul_(steps, self._per_member([-lr / bc1 for lr in lrs]))
            torch._foreach_add_(params, steps)


def _member_norms(grads: list[Tensor]) -> Tensor:
    """Gradient norm of each member over all its parameters: (K,)."""
    squares = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads])  # (n_params, K)
    return squares.sum(0).sqrt()


def _scale(grads: list[Tensor], factor: Tensor) -> None:
    shaped = {g.dim(): factor.view((-1,) + (1,) * (g.dim() - 1)) for g in grads}
    torch._foreach_mul_(grads, [shaped[g.dim()] for g in grads])


def train_ensemble(
    ensemble: Ensemble,
    loss_fn: Callable[[Callable[..., Tensor], Any], Tensor],
    batches: Iterator[Any],
    cfgs: Sequence[TrainConfig],
    *,
    checkpoint: LoopCheckpoint | None = None,
) -> Iterator[tuple[int, list[dict[str, float]]]]:
    """The ensemble counterpart of :func:`fmlab.train.train`: same yields, one metrics
    dict per member. A member whose loss turns NaN/inf is frozen and reports
    ``diverged_at_step``; the others train on. Batches are moved to the ensemble's
    device; a ``checkpoint`` saves and resumes the loop as :func:`~fmlab.train.train`
    does."""
    if len(cfgs) != ensemble.size:
        raise ValueError(f"{len(cfgs)} configs for an ensemble of {ensemble.size}")
    check_member_configs(cfgs)
    cfg, K = cfgs[0], ensemble.size
    if cfg.precision == "fp16":
        raise ValueError(
            "train.precision=fp16 needs a gradient scaler, which batched ensembles have not: "
            "use bf16, or train the members one by one (batched=false / --ensemble off)"
        )
    params = list(ensemble.params.values())
    device = params[0].device if params else torch.device("cpu")
    amp = Precision(cfg, device)
    optimizer = BatchedAdamW(params, cfgs)
    lamb = torch.tensor([c.grokfast.lamb if c.grokfast else 0.0 for c in cfgs], device=device)
    alpha = next((c.grokfast.alpha for c in cfgs if c.grokfast), None)
    ema: list[Tensor] | None = None
    alive = torch.ones(K, dtype=torch.bool, device=device)
    diverged: dict[int, int] = {}
    grad_norms, drawn, start = None, 0, 0

    def state() -> tuple[dict[str, Any], dict[str, Any]]:
        tensors = {"params": ensemble.params, "m": optimizer.m, "v": optimizer.v, "alive": alive}
        if ema is not None:
            tensors["ema"] = ema
        scalars = {"step_count": optimizer.step_count, "diverged": diverged}
        return tensors, scalars

    saved = checkpoint.begin() if checkpoint is not None else None
    if saved is not None:
        with torch.no_grad():
            for name, p in ensemble.params.items():
                p.copy_(saved.tensors["params"][name])
            for mine, theirs in (
                (optimizer.m, saved.tensors["m"]),
                (optimizer.v, saved.tensors["v"]),
            ):
                for a, b in zip(mine, theirs, strict=True):
                    a.copy_(b)
        alive = saved.tensors["alive"].to(device)
        ema = [e.to(device) for e in saved.tensors["ema"]] if "ema" in saved.tensors else None
        optimizer.step_count = saved.scalars["step_count"]
        diverged = {int(k): v for k, v in saved.scalars["diverged"].items()}
        drawn = skip_batches(batches, saved.batches_drawn)
        start, item = saved.item[0], saved.item
    else:
        item = (0, [{"lr": lr_at(c, 0)} for c in cfgs])
        save_if_due(checkpoint, item, state, drawn, last=cfg.steps == 0)
    yield item
    loss_sum, n_losses = torch.zeros(K, dtype=torch.float64, device=device), 0
    for step in range(start + 1, cfg.steps + 1):
        everyone = not diverged  # the common case skips the per-member masking
        lrs = [lr_at(c, step - 1) if k not in diverged else 0.0 for k, c in enumerate(cfgs)]
        with amp.autocast():
            losses = loss_fn(ensemble, place(next(batches), device))  # (K,)
        drawn += 1
        finite = torch.isfinite(losses.detach())
        if not bool(finite.all()):
            for k in torch.nonzero(alive & ~finite).flatten().tolist():
                diverged[k] = step - 1
            alive &= finite
            everyone = False
        for p in params:
            p.grad = None
        total = losses if everyone else torch.where(alive, losses, torch.zeros_like(losses))
        total.sum().backward()
        grads = [p.grad for p in params]
        if alpha is not None:
            ema = _grokfast(grads, ema, alpha, lamb)
        if cfg.grad_clip is not None:
            grad_norms = _member_norms(grads)
            _scale(grads, (cfg.grad_clip / (grad_norms + 1e-6)).clamp(max=1.0))
        if not everyone:  # a diverged member's gradient is zeroed
            _scale(grads, alive.to(grads[0].dtype))
        optimizer.step(lrs)
        loss_sum += torch.where(alive, losses.detach().double(), 0.0)
        n_losses += 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            item = (step, _report(loss_sum / n_losses, lrs, grad_norms, diverged))
            loss_sum, n_losses = torch.zeros(K, dtype=torch.float64, device=device), 0
            save_if_due(checkpoint, item, state, drawn, last=step == cfg.steps)
            yield item


def _grokfast(grads: list[Tensor], ema: list[Tensor] | None, alpha: float, lamb: Tensor):
    """Grokfast-EMA per member (λ_k = 0 leaves member k's gradient unchanged)."""
    with torch.no_grad():
        if ema is None:
            ema = [g.clone() for g in grads]
        else:
            for e, g in zip(ema, grads, strict=True):
                e.mul_(alpha).add_(g, alpha=1 - alpha)
        for e, g in zip(ema, grads, strict=True):
            g.add_(e * lamb.to(g.dtype).view((-1,) + (1,) * (g.dim() - 1)))
    return ema


def _report(mean_loss: Tensor, lrs, grad_norms, diverged: dict[int, int]) -> list[dict]:
    out = []
    for k in range(len(lrs)):
        if k in diverged:
            out.append({"diverged_at_step": diverged[k]})
            continue
        metrics = {"loss": float(mean_loss[k]), "lr": lrs[k]}
        if grad_norms is not None:
            metrics["grad_norm"] = float(grad_norms[k])
        out.append(metrics)
    return out
