"""A mixture-of-experts feed-forward layer (Shazeer et al. 2017; Fedus et al. 2021, Switch).

A router scores each token against E experts (MLPs); the token goes to its top-k experts
and their outputs are added with the router's weights. Parameters grow with E while the
compute per token stays that of k experts — "parameters without FLOPs".

* **Weights.** k = 1 (Switch): the output is ``p_i(x) · E_i(x)`` with ``p`` the router's
  softmax, so the router gets a gradient. k = 2 (GShard, Lepikhin et al. 2021): the two
  probabilities are renormalised to sum to 1.
* **Capacity.** Each expert takes at most ``C = ⌈capacity_factor · k · N / E⌉`` of the N
  tokens of a batch (Switch eq. 3). Slots are filled rank by rank — every token's first
  choice before any second choice — and in token order within a rank; assignments past C
  are dropped (the token's residual stream passes unchanged for that slot). ``None`` means
  no limit. With a limit, a token's output depends on the tokens routed before it in the
  batch (earlier sequences, earlier positions) — never on later ones, so causality holds.
* **Load-balancing loss** (Switch eq. 4): ``α · E · Σ_i f_i · P_i`` with ``f_i`` the
  fraction of the N·k routed assignments (before dropping) sent to expert i and ``P_i`` the
  mean router probability of expert i; it is α at perfect balance and α·E at collapse.
* **Router z-loss** (Zoph et al. 2022, ST-MoE eq. 5): ``β · mean_x (logsumexp z(x))²``.

The auxiliary loss of the last forward is ``layer.aux_loss``; :func:`moe_aux_loss` sums it
over a model, for the study's loss function to add (the training loop stays unaware).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from fmlab.config import Config
from fmlab.models.layers import ACTIVATIONS, fan_in_std, normal_param, zeros_param

ROUTER_INIT_SCALE = 0.1  # Switch §2.4: a 10× smaller initialisation keeps routing stable


class MoEConfig(Config):
    n_experts: int = Field(8, ge=1)
    top_k: int = Field(1, ge=1, le=2, description="experts per token: 1 (Switch) or 2 (GShard)")
    d_expert: int | None = Field(None, ge=1, description="hidden width per expert; None = d_mlp")
    capacity_factor: float | None = Field(
        1.25, gt=0, description="expert capacity = factor · k · tokens / experts; None = no limit"
    )
    balance_coef: float = Field(0.01, ge=0, description="α of the Switch balancing loss; 0 = off")
    z_loss_coef: float = Field(0.0, ge=0, description="β of the router z-loss (ST-MoE: 1e-3)")

    @model_validator(mode="after")
    def _check(self) -> MoEConfig:
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k={self.top_k} exceeds n_experts={self.n_experts}")
        return self


@dataclass(frozen=True)
class Routing:
    """Where each of N tokens goes: k slots per token."""

    expert: Tensor  # (N, k) int64, chosen experts, best first
    weight: Tensor  # (N, k) combine weights (see the module docstring)
    position: Tensor  # (N, k) int64, the slot's index in its expert's buffer
    kept: Tensor  # (N, k) bool, False where the expert was already full
    probs: Tensor  # (N, E) router softmax
    capacity: int


def expert_capacity(n_tokens: int, n_experts: int, top_k: int, factor: float | None) -> int | None:
    """Switch eq. 3, rounded up; None without a capacity factor."""
    if factor is None:
        return None
    return max(1, math.ceil(factor * top_k * n_tokens / n_experts))


def route(logits: Tensor, top_k: int, capacity: int | None) -> Routing:
    """Top-k routing with capacity (see the module docstring) of logits (N, E)."""
    N, E = logits.shape
    probs = logits.float().softmax(-1)
    weight, expert = probs.topk(top_k, dim=-1)  # (N, k)
    if top_k > 1:
        weight = weight / weight.sum(-1, keepdim=True)
    onehot = F.one_hot(expert.T.reshape(-1), E)  # (k·N, E), rank-major: first choices first
    position = ((onehot.cumsum(0) - 1) * onehot).sum(-1).view(top_k, N).T  # (N, k)
    if capacity is None:
        capacity = int(onehot.sum(0).max())
    return Routing(expert, weight, position, position < capacity, probs, capacity)


def balance_loss(routing: Routing, n_experts: int) -> Tensor:
    """Switch's ``E · Σ_i f_i · P_i`` (without α): 1 at perfect balance."""
    f = F.one_hot(routing.expert, n_experts).float().mean((0, 1))  # (E,) sums to 1
    P = routing.probs.mean(0)  # (E,)
    return n_experts * (f * P).sum()


def z_loss(logits: Tensor) -> Tensor:
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


@dataclass(frozen=True)
class RouterStats:
    """Balance of one forward pass. ``load`` is the fraction of routed assignments per
    expert (before dropping); CV = std / mean over experts (population std), 0 when
    balanced and √(E − 1) when every token picks one expert."""

    load: tuple[float, ...]
    load_cv: float
    load_entropy: float  # entropy of ``load`` / log E: 1 when balanced, 0 at collapse
    max_load_ratio: float  # max_i load_i / mean load
    dropped_fraction: float  # of the N·k assignments
    balance_loss: float  # E · Σ f_i P_i (without α)
    z_loss: float

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        names = ("load_cv", "load_entropy", "max_load_ratio", "dropped_fraction")
        out = {f"{prefix}{n}": getattr(self, n) for n in names}
        out[f"{prefix}balance_loss"], out[f"{prefix}z_loss"] = self.balance_loss, self.z_loss
        return out


def router_stats(routing: Routing, logits: Tensor) -> RouterStats:
    E = routing.probs.shape[1]
    counts = F.one_hot(routing.expert, E).sum((0, 1)).double()  # (E,)
    load = counts / counts.sum()
    p = load[load > 0]
    entropy = float(-(p * p.log()).sum() / math.log(E)) if E > 1 else 1.0
    return RouterStats(
        load=tuple(load.tolist()),
        load_cv=float(load.std(unbiased=False) / load.mean()),
        load_entropy=entropy,
        max_load_ratio=float(load.max() / load.mean()),
        dropped_fraction=float(1.0 - routing.kept.double().mean()),
        balance_loss=float(balance_loss(routing, E)),
        z_loss=float(z_loss(logits)),
    )


class MoE(nn.Module):
    """E expert MLPs d_model → d_expert → d_model behind a top-k router (no router bias)."""

    def __init__(
        self,
        d_model: int,
        d_expert: int,
        cfg: MoEConfig,
        act: str,
        generator: torch.Generator,
        *,
        bias: bool = True,
        init_scale: float = 1.0,
    ):
        super().__init__()
        E, D, Fh = cfg.n_experts, d_model, d_expert
        self.cfg, self.act = cfg, ACTIVATIONS[act]
        self.router = normal_param((D, E), fan_in_std(D, ROUTER_INIT_SCALE), generator)
        self.w_in = normal_param((E, D, Fh), fan_in_std(D, init_scale), generator)
        self.w_out = normal_param((E, Fh, D), fan_in_std(Fh, init_scale), generator)
        self.b_in = zeros_param((E, 1, Fh)) if bias else None
        self.b_out = zeros_param((E, 1, D)) if bias else None
        self.aux_loss: Tensor = torch.zeros(())
        self.stats: RouterStats | None = None

    def n_active_params(self) -> int:
        """Parameters one token uses: the router and k experts."""
        per_expert = sum(
            p[0].numel() for p in (self.w_in, self.w_out, self.b_in, self.b_out) if p is not None
        )
        return self.router.numel() + self.cfg.top_k * per_expert

    def experts(self, buffer: Tensor) -> Tensor:  # (E, C, D) → (E, C, D)
        h = buffer @ self.w_in
        h = self.act(h + self.b_in if self.b_in is not None else h)
        out = h @ self.w_out
        return out + self.b_out if self.b_out is not None else out

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D)
        D, E, k = x.shape[-1], self.cfg.n_experts, self.cfg.top_k
        flat = x.reshape(-1, D)  # (N, D)
        N = flat.shape[0]
        logits = flat @ self.router  # (N, E)
        r = route(logits, k, expert_capacity(N, E, k, self.cfg.capacity_factor))
        keep = r.kept.reshape(-1)
        token = torch.arange(N, device=x.device).repeat_interleave(k)[keep]  # (M,)
        slot = (r.expert * r.capacity + r.position).reshape(-1)[keep]  # (M,)
        weight = r.weight.reshape(-1)[keep].to(x.dtype)  # (M,)
        buffer = flat.new_zeros(E * r.capacity, D).index_copy(0, slot, flat[token])
        out = self.experts(buffer.view(E, r.capacity, D)).reshape(E * r.capacity, D)
        y = flat.new_zeros(N, D).index_add(0, token, out[slot] * weight[:, None])
        aux = self.cfg.balance_coef * balance_loss(r, E) if self.cfg.balance_coef else 0.0
        if self.cfg.z_loss_coef:
            aux = aux + self.cfg.z_loss_coef * z_loss(logits)
        self.aux_loss = aux if isinstance(aux, Tensor) else logits.new_zeros(())
        with torch.no_grad():
            self.stats = router_stats(r, logits)
        return y.view_as(x)


def build_moe(cfg, generator: torch.Generator) -> MoE:
    """The MoE layer of a block of GPTConfig ``cfg`` (its ``moe`` field set); experts are
    ``moe.d_expert`` wide, or ``d_mlp`` by default."""
    return MoE(
        cfg.d_model,
        cfg.moe.d_expert or cfg.d_mlp,
        cfg.moe,
        cfg.act,
        generator,
        bias=cfg.bias,
        init_scale=cfg.init_scale,
    )


def moe_layers(model: nn.Module) -> list[MoE]:
    return [m for m in model.modules() if isinstance(m, MoE)]


def moe_aux_loss(model: nn.Module) -> Tensor:
    """Sum of the auxiliary losses of the model's MoE layers from their last forward
    (a zero scalar for a dense model): add it to the task loss."""
    layers = moe_layers(model)
    if not layers:
        return torch.zeros(())
    return torch.stack([torch.as_tensor(m.aux_loss) for m in layers]).sum()
