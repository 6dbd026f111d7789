"""The training loops of the ``alignment`` study: the reference policy (pretraining on the
language), the reward model, and one loop per alignment method — SFT on the preferred
completions, DPO, IPO, and REINFORCE on the learned reward with a KL penalty.

Every loop is :func:`fmlab.train.train` with its own checkpoint, so a killed run resumes
exactly. Randomness: the batches come from their own generator; the RL loss samples its
completions from a generator seeded by the batch (a seed drawn with the batch), and the
evaluations from generators seeded by ``(seed, step)`` — so a resumed loop replays the
same draws, and every method is evaluated on the same prompts and the same uniform draws
at the same step (common random numbers make the methods' differences less noisy).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmlab.models import GPT
from fmlab.store import RunLog
from fmlab.studies.alignment.losses import PAIR_LOSSES, bt_loss
from fmlab.studies.alignment.policy import (
    completion_logps,
    kl_along,
    sample,
    true_reward,
    win_rate,
)
from fmlab.studies.alignment.prefs import Pairs
from fmlab.tasks.language import MarkovLanguage
from fmlab.train import TrainConfig, train


class RewardModel(nn.Module):
    """A copy of the reference's trunk with a scalar head read at the last token."""

    def __init__(self, trunk: GPT):
        super().__init__()
        self.trunk = copy.deepcopy(trunk).requires_grad_(True)
        self.head = nn.Linear(trunk.cfg.d_model, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: Tensor) -> Tensor:  # (B, T) -> (B,)
        return self.head(self.trunk(ids, output="final")[:, -1]).squeeze(-1)


@dataclass
class Eval:
    """What every evaluation of a policy is measured on, fixed per seed."""

    ref: GPT
    prompts: Tensor  # (n_eval, P)
    ref_reward: Tensor  # (n_eval,) the reference's own completions' true rewards
    good: Tensor  # (V,) bool
    gen_len: int
    seed: int

    def __call__(self, policy: nn.Module, step: int) -> dict[str, float]:
        g = torch.Generator().manual_seed(1_000_003 * (self.seed + 1) + step)
        P = self.prompts.shape[1]
        ids = sample(policy, self.prompts, self.gen_len, g)
        r = true_reward(ids, P, self.good)
        kl = kl_along(policy, self.ref, ids, P)
        return {
            "kl": float(kl.mean()),
            "reward": float(r.mean()),
            "win_rate": win_rate(r, self.ref_reward),
        }


def lm_loss(model: nn.Module, ids: Tensor) -> Tensor:
    logits = model(ids[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten())


def language_batches(lang: MarkovLanguage, B: int, T: int, seed: int) -> Iterator[Tensor]:
    g = torch.Generator().manual_seed(7_919 * seed + 11)
    while True:
        yield lang.sample(B, T, g)


def index_batches(n: int, B: int, seed: int, with_seed: bool = False) -> Iterator[Any]:
    g = torch.Generator().manual_seed(104_729 * seed + 13)
    while True:
        idx = torch.randint(n, (B,), generator=g)
        yield (idx, torch.randint(2**62, (1,), generator=g)) if with_seed else idx


def pretrain(cfg: Any, lang: MarkovLanguage, seed: int, log: RunLog) -> GPT:
    """The reference policy: fmlab's GPT trained on samples of the language."""
    T = cfg.prompt_len + cfg.gen_len
    model = GPT(
        cfg.model,
        vocab_size=lang.vocab_size,
        seq_len=T,
        generator=torch.Generator().manual_seed(seed),
    )
    tc: TrainConfig = cfg.pretrain
    loop = train(
        model,
        lm_loss,
        language_batches(lang, tc.batch_size or 64, T, seed),
        tc,
        checkpoint=log.checkpoint(f"seed{seed}/pretrain"),
    )
    for step, m in log.track(loop, tc.steps, f"seed {seed}: reference"):
        log.log(step, m, seed=seed, phase="pretrain")
    return model.eval()


def train_reward_model(cfg: Any, ref: GPT, pairs: Pairs, seed: int, log: RunLog) -> RewardModel:
    """A Bradley–Terry reward model on the preference pairs (Ouyang et al. 2022 §3.5)."""
    rm = RewardModel(ref).train()
    chosen, rejected = pairs.sequences()

    def loss(model: RewardModel, idx: Tensor) -> Tensor:
        return bt_loss(model(chosen[idx]), model(rejected[idx])).mean()

    tc: TrainConfig = cfg.reward_model
    loop = train(
        rm,
        loss,
        index_batches(len(pairs), tc.batch_size or 64, seed),
        tc,
        checkpoint=log.checkpoint(f"seed{seed}/reward_model"),
    )
    for step, m in log.track(loop, tc.steps, f"seed {seed}: reward model"):
        log.log(step, m, seed=seed, phase="reward_model")
    with torch.no_grad():
        acc = float((rm(chosen) > rm(rejected)).float().mean())
    log.log(tc.steps, {"pair_acc": acc}, seed=seed, phase="reward_model")
    return rm.eval()


def align(
    cfg: Any,
    method: str,
    beta: float,
    ref: GPT,
    pairs: Pairs,
    rm: RewardModel | None,
    ev: Eval,
    tc: TrainConfig,
    log: RunLog,
    key: str,
) -> tuple[GPT, list[dict[str, float]]]:
    """Train a copy of ``ref`` with ``method`` at ``beta``; the trajectory of evaluations
    (step, kl, reward, win_rate, loss) at every ``tc.eval_every`` steps and at step 0."""
    policy = copy.deepcopy(ref).train().requires_grad_(True)
    ref.requires_grad_(False)
    P, L = cfg.prompt_len, cfg.gen_len
    chosen, rejected = pairs.sequences()
    with torch.no_grad():
        ref_w, ref_l = completion_logps(ref, chosen, P), completion_logps(ref, rejected, P)
    seed = ev.seed
    if method == "sft":

        def loss(model: nn.Module, idx: Tensor) -> Tensor:
            return -completion_logps(model, chosen[idx], P).mean() / L

        batches = index_batches(len(pairs), tc.batch_size or 64, seed)
    elif method in PAIR_LOSSES:
        pair_loss = PAIR_LOSSES[method]

        def loss(model: nn.Module, idx: Tensor) -> Tensor:
            both = completion_logps(model, torch.cat([chosen[idx], rejected[idx]]), P)
            pi_w, pi_l = both.chunk(2)
            return pair_loss(pi_w, pi_l, ref_w[idx], ref_l[idx], beta).mean()

        batches = index_batches(len(pairs), tc.batch_size or 64, seed)
    elif method == "rl":
        assert rm is not None
        k = cfg.rl_samples

        def loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
            # REINFORCE with the KL-penalised learned reward r_φ - β log(π/π_ref)
            # (Ziegler et al. 2019; Stiennon et al. 2020) and a leave-one-out baseline
            # over k samples per prompt (Ahmadian et al. 2024, RLOO)
            idx, s = batch
            g = torch.Generator().manual_seed(int(s))
            was = model.training
            model.eval()
            ids = sample(model, pairs.prompts[idx].repeat_interleave(k, 0), L, g)
            model.train(was)
            with torch.no_grad():
                r = rm(ids)
                ref_lp = completion_logps(ref, ids, P)
            lp = completion_logps(model, ids, P)
            ret = (r - beta * (lp.detach() - ref_lp)).view(-1, k)
            adv = ret - (ret.sum(1, keepdim=True) - ret) / (k - 1)
            return -(adv.flatten() * lp).mean() / L

        batches = index_batches(len(pairs), tc.batch_size or 64, seed, with_seed=True)
    else:
        raise ValueError(f"unknown method {method!r}")

    traj: list[dict[str, float]] = []

    def restore(saved: Any) -> None:
        traj[:] = saved

    loop = train(policy, loss, batches, tc, checkpoint=log.checkpoint(key, lambda: traj, restore))
    for step, m in log.track(loop, tc.steps, f"seed {seed}: {key.split('/', 1)[1]}"):
        if step % tc.eval_every and step != tc.steps:
            continue
        policy.eval()
        row = {"step": float(step), **ev(policy, step)}
        policy.train()
        if "loss" in m:
            row["loss"] = m["loss"]
        traj.append(row)
        log.log(step, row, seed=seed, phase="align", model=method, beta=beta)
    return policy.eval(), traj
