"""One seed and forget split of the ``unlearning`` study: the retrained model's
reference, each method's trajectory of (forget quality, model utility), membership
inference at the end, and the relearning attack."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fmlab.store import Run
from fmlab.studies.unlearning import metrics as M
from fmlab.studies.unlearning.evaluate import mia, model_utility, score_facts, utility_parts
from fmlab.studies.unlearning.facts import Fact
from fmlab.studies.unlearning.lm import LM
from fmlab.studies.unlearning.unlearn import frozen, relearn, unlearn


@dataclass
class Split:
    """The fact sets one unlearning run is measured on."""

    forget: list[Fact]
    retain: list[Fact]  # every retained fact (their renderings feed retain terms)
    utility: list[Fact]  # the retain facts model utility is measured on
    world: list[Fact] | None
    holdout: list[Fact]


def pairs(facts: list[Fact]) -> list[tuple[str, str]]:
    return [r for f in facts for r in f.train]


def snapshot(lm: LM, split: Split, cfg: Any, tr_ref: np.ndarray | None) -> dict[str, Any]:
    """Forget quality (against the retrained truth ratios, when given) and utility."""
    f = score_facts(lm, split.forget, rouge=False, max_new=cfg.max_new)
    out: dict[str, Any] = {"forget_prob": float(M.probability(f["nll"]).mean())}
    if split.utility:
        r = score_facts(lm, split.utility, rouge=True, max_new=cfg.max_new)
        w = score_facts(lm, split.world, rouge=True, max_new=cfg.max_new) if split.world else None
        parts = utility_parts(r, w)
        out |= {"utility": model_utility(parts), **{f"u_{k}": v for k, v in parts.items()}}
    if "tr" in f:
        out["forget_tr"] = M.tr_forget(f["tr"])
        out["forget_acc"] = float(f["correct"].mean())
        out["_tr"] = f["tr"]
        if tr_ref is not None:
            fq = M.forget_quality(f["tr"], tr_ref)
            out["fq"], out["log10_fq"] = fq, math.log10(max(fq, 1e-300))
    return out


def membership(lm: LM, split: Split, cfg: Any) -> dict[str, float]:
    f = score_facts(lm, split.forget, rouge=False, max_new=cfg.max_new)
    h = score_facts(lm, split.holdout, rouge=False, max_new=cfg.max_new)
    return mia(f, h, split.forget, split.holdout, cfg.min_k)


def trajectory(
    lm: LM, method: str, split: Split, cfg: Any, seed: int, tr_ref, run: Run, tags: dict
) -> tuple[list[dict[str, Any]], LM, LM]:
    """Unlearn with ``method``, measuring at every evaluation step. Returns the rows, the
    final model, and the model at the **stopping point** — the first step whose forget
    quality reaches ``cfg.fq_level`` (where a practitioner would stop), else the final."""
    rows, last, stop = [], lm, None
    loop = unlearn(lm, method, pairs(split.forget), pairs(split.retain), cfg.unlearn, seed)
    for step, model in loop:
        model.model.eval()
        snap = snapshot(model, split, cfg, tr_ref)
        snap.pop("_tr", None)
        rows.append({"step": step, **snap})
        run.log(step, {k: v for k, v in snap.items()}, **tags, method=method)
        if stop is None and step > 0 and snap.get("fq", 0.0) >= cfg.fq_level:
            stop = frozen(model)
        model.model.train()
        last = model
    last.model.eval()
    return rows, last, stop if stop is not None else last


def relearning(
    models: dict[str, LM], split: Split, cfg: Any, seed: int
) -> dict[str, dict[str, float]]:
    """Fine-tune each model (unlearned ones at their stopping point) for
    ``cfg.relearn_steps`` on ``cfg.relearn_frac`` of the
    forget facts; how much of the *other* forget facts comes back (option accuracy and
    probability, before and after)."""
    rng = np.random.default_rng(seed + 777)
    n = len(split.forget)
    k = max(1, round(cfg.relearn_frac * n))
    pick = set(rng.choice(n, k, replace=False).tolist())
    attack = [f for i, f in enumerate(split.forget) if i in pick]
    rest = [f for i, f in enumerate(split.forget) if i not in pick]
    out = {}
    for name, lm in models.items():
        row = {}
        for when, m in (
            ("before", lm),
            ("after", relearn(lm, pairs(attack), cfg.relearn_steps, cfg.relearn_lr, 32, seed)),
        ):
            s = score_facts(m, rest, rouge=False, max_new=cfg.max_new)
            row[f"acc_{when}"] = float(s["correct"].mean())
            row[f"prob_{when}"] = float(M.probability(s["nll"]).mean())
        out[name] = row
    return out
