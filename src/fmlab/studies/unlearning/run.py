"""The ``unlearning`` study's two runs: on the fact corpus with fmlab's GPT (targets and
retrained models trained here), and on a user's causal LM with their JSONL facts
(``fmlab unlearn``: no retrained model, so no forget quality)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fmlab.errors import UserInputError
from fmlab.store import Run
from fmlab.studies.unlearning.facts import make_corpus, read_facts, vocabulary
from fmlab.studies.unlearning.lm import LM, HFCodec, WordCodec, hf_call
from fmlab.studies.unlearning.measure import (
    Split,
    membership,
    relearning,
    snapshot,
    trajectory,
)
from fmlab.studies.unlearning.methods import METHODS
from fmlab.studies.unlearning.summary import summarise
from fmlab.studies.unlearning.train import train_models


def run_corpus(cfg: Any, run: Run) -> dict[str, Any]:
    codec = WordCodec(vocabulary())
    n_hold = max(1, math.ceil(cfg.n_people * max(cfg.forget_pcts) / 100))
    corpora = {
        s: make_corpus(cfg.n_people, n_hold, cfg.forget_pcts, s, cfg.n_perturbed, cfg.n_countries)
        for s in cfg.seeds
    }
    lms = train_models(cfg, corpora, codec, run)
    for (seed, name), lm in lms.items():  # `fmlab export RUN OUT --weights gpt_target_seed0`
        run.save_weights(f"gpt_{name}_seed{seed}", lm.model)
    results = []
    biggest = max(cfg.forget_pcts)
    for seed in cfg.seeds:
        c = corpora[seed]
        target = lms[(seed, "target")]
        kept = c.retain(biggest)  # model utility: the same retain facts for every split
        pick = np.random.default_rng(seed + 99).choice(
            len(kept), min(cfg.utility_facts, len(kept)), replace=False
        )
        utility = [c.people[kept[i]] for i in sorted(pick)]
        per_split = {}
        for pct in cfg.forget_pcts:
            forget = [c.people[i] for i in c.forget[pct]]
            split = Split(
                forget=forget,
                retain=[c.people[i] for i in c.retain(pct)] + c.world,
                utility=utility,
                world=c.world,
                holdout=c.holdout[: len(forget)],
            )
            per_split[pct] = one_split(
                cfg,
                run,
                split,
                target,
                lms[(seed, f"retain{pct:g}")],
                seed,
                pct,
                relearn=pct == biggest,
            )
        results.append({"seed": seed, "splits": per_split})
    out = summarise(cfg, results)
    run.save_json("unlearning", out["artifacts"])
    return out["metrics"]


def one_split(cfg, run, split: Split, target: LM, retrained: LM, seed, pct, *, relearn: bool):
    tags = {"seed": seed, "forget_pct": pct}
    ref = snapshot(retrained, split, cfg, None)
    tr_ref = ref.pop("_tr")
    ref["fq"], ref["log10_fq"] = 1.0, 0.0  # the retrained model is its own reference
    finals: dict[str, LM] = {}
    stops: dict[str, LM] = {}
    trajectories = {}
    for method in cfg.methods:
        rows, final, stop = trajectory(target, method, split, cfg, seed, tr_ref, run, tags)
        trajectories[method], finals[method] = rows, final
        if relearn:
            stops[method] = stop
    mia = {
        name: membership(m, split, cfg)
        for name, m in {"target": target, "retrain": retrained, **finals}.items()
    }
    out = {"retrain": ref, "trajectories": trajectories, "mia": mia}
    if relearn:
        out["relearn"] = relearning({**stops, "retrain": retrained}, split, cfg, seed)
    return out


def run_user(cfg: Any, run: Run) -> dict[str, Any]:
    """A user's causal LM: each method's trajectory of forget probability/accuracy and
    (with a retain file) utility; MIA with a holdout file; no retrained reference."""
    from fmlab.device import place
    from fmlab.models.hf import load

    forget = read_facts(cfg.forget_file, "forget")  # a malformed line: one error naming it
    retain = read_facts(cfg.retain_file, "retain") if cfg.retain_file else []
    holdout = read_facts(cfg.holdout_file, "holdout") if cfg.holdout_file else []

    loaded = load(
        cfg.source,
        task="causal-lm",
        seed=cfg.seeds[0],
        allow_unsafe_pickle=cfg.allow_unsafe_pickle,
        trust_remote_code=cfg.trust_remote_code,
    )
    if loaded.tokenizer is None:
        raise UserInputError(f"{cfg.source} has no tokenizer: its facts cannot be encoded")
    model = place(loaded.model)
    n_pos = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", 1024
    )
    lm = LM(model.eval(), HFCodec(loaded.tokenizer), hf_call, int(n_pos))
    need = [m for m in cfg.methods if METHODS[m].retain and not retain]
    if need:
        raise UserInputError(f"methods {need} need retain facts: pass --retain FILE")
    split = Split(forget, retain, retain[: cfg.utility_facts], None, holdout)
    results: dict[str, Any] = {"trajectories": {}, "mia": {}}
    seed = cfg.seeds[0]
    for method in cfg.methods:
        rows, final, _ = trajectory(lm, method, split, cfg, seed, None, run, {"seed": seed})
        results["trajectories"][method] = rows
        if holdout:
            results["mia"][method] = membership(final, split, cfg)
    if holdout:
        results["mia"]["original"] = membership(lm, split, cfg)
    metrics: dict[str, Any] = {}
    for method, rows in results["trajectories"].items():
        for key in ("forget_prob", "forget_acc", "forget_tr", "utility"):
            if key in rows[-1]:
                metrics[f"{key}_{method}"] = rows[-1][key]
                metrics[f"{key}_before"] = rows[0][key]
    for name, row in results["mia"].items():
        metrics |= {f"{k}_{name}": v for k, v in row.items()}
    run.save_json("unlearning", {"user": True, **results})
    return metrics
