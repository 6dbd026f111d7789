"""One seed of the ``alignment`` study, end to end: the reference policy, the preference
pairs (Bradley–Terry and deterministic labels on the same completions), the reward model,
every method over the β grid, the deterministic-preference runs, and the measures of the
main-β policies (calibration, token shift, win rate)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fmlab.store import Run, RunLog
from fmlab.studies.alignment.measure import calibration, token_shift
from fmlab.studies.alignment.policy import sample, true_reward
from fmlab.studies.alignment.prefs import label
from fmlab.studies.alignment.summary import summarise
from fmlab.studies.alignment.train import Eval, align, pretrain, train_reward_model
from fmlab.tasks.language import make_language
from fmlab.train.pool import map_logged


def reward_tokens(vocab_size: int, n_good: int, seed: int) -> torch.Tensor:
    """(V,) mask of the reward set: ``n_good`` tokens drawn once from ``seed``."""
    pick = np.random.default_rng(seed).choice(vocab_size, n_good, replace=False)
    good = torch.zeros(vocab_size, dtype=torch.bool)
    good[torch.from_numpy(pick)] = True
    return good


def run_seed(cfg: Any, seed: int, log: RunLog) -> dict[str, Any]:
    lang = make_language(cfg.language)
    good = reward_tokens(lang.vocab_size, cfg.n_good, cfg.language.seed + 1)
    P, L = cfg.prompt_len, cfg.gen_len
    ref = pretrain(cfg, lang, seed, log)

    g = torch.Generator().manual_seed(31_337 * seed + 5)
    prompts = lang.sample(cfg.n_pairs, P, g)
    y1, y2 = sample(ref, prompts, L, g)[:, P:], sample(ref, prompts, L, g)[:, P:]
    r1 = true_reward(torch.cat([prompts, y1], 1), P, good)
    r2 = true_reward(torch.cat([prompts, y2], 1), P, good)
    kw = {"temperature": cfg.bt_temperature, "generator": g}
    pairs = label(prompts, y1, y2, r1, r2, deterministic=False, **kw)
    det = label(prompts, y1, y2, r1, r2, deterministic=True, **kw)

    eval_prompts = lang.sample(cfg.n_eval, P, g)
    ref_reward = true_reward(sample(ref, eval_prompts, L, g), P, good)
    heldout = lang.sample(cfg.n_heldout, P + L, g)
    ev = Eval(ref, eval_prompts, ref_reward, good, L, seed)

    rm = train_reward_model(cfg, ref, pairs, seed, log) if "rl" in cfg.methods else None
    frontier: dict[str, dict[str, list]] = {}
    main: dict[str, Any] = {}
    for method in cfg.methods:
        betas = [cfg.beta_main] if method == "sft" else cfg.betas
        frontier[method] = {}
        for beta in betas:
            key = f"seed{seed}/{method}_beta{beta:g}"
            policy, traj = align(cfg, method, beta, ref, pairs, rm, ev, cfg.align, log, key)
            frontier[method][f"{beta:g}"] = traj
            if beta == cfg.beta_main:
                main[method] = policy

    deterministic = {}
    for method in cfg.det_methods:
        key = f"seed{seed}/det_{method}_beta{cfg.det_beta:g}"
        _, traj = align(cfg, method, cfg.det_beta, ref, det, None, ev, cfg.det, log, key)
        deterministic[method] = traj

    cal = {"base": calibration(ref, heldout, cfg.ece_bins)}
    shift = {}
    for method, policy in main.items():
        cal[method] = calibration(policy, heldout, cfg.ece_bins)
        shift[method] = token_shift(policy, ref, eval_prompts, L, good)
    return {
        "seed": seed,
        "frontier": frontier,
        "deterministic": deterministic,
        "calibration": cal,
        "token_shift": shift,
        "pairs": {
            "n": len(pairs),
            "n_deterministic": len(det),
            "first_rate": float(pairs.first.double().mean()),
            "expected_first_rate": float(pairs.p_first.mean()),
            "ref_reward": float(ref_reward.mean()),
            "good_tokens": good.nonzero().flatten().tolist(),
        },
    }


def run_study(cfg: Any, run: Run) -> dict[str, Any]:
    results = map_logged(run_seed, [(cfg, s) for s in cfg.seeds], cfg.workers, run, "seeds")
    out = summarise(cfg, results)
    run.save_json("alignment", out["artifacts"])
    return out["metrics"]
