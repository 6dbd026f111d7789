"""A model measured on fact sets: the per-question quantities TOFU's metrics are built
from (:mod:`.metrics`), forget quality against a retrained model, model utility, and
membership inference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fmlab.studies.unlearning import metrics as M
from fmlab.studies.unlearning.facts import Fact
from fmlab.studies.unlearning.lm import LM, answer_logprobs, greedy_answers


def _avg_nll(lps: list) -> np.ndarray:
    return np.array([float(-lp.mean()) if len(lp) else 0.0 for lp in lps])


def score_facts(lm: LM, facts: Sequence[Fact], *, rouge: bool, max_new: int) -> dict[str, Any]:
    """Per question: mean NLL of the answer, the paraphrase and each perturbed answer
    (N, P), the answer's token log-probs, and the greedy answer's ROUGE-L recall."""
    pairs = [(f.question, f.answer) for f in facts]
    has_tr = all(f.paraphrase and f.perturbed for f in facts) and len(facts) > 0
    if has_tr:
        P = min(len(f.perturbed) for f in facts)
        pairs += [(f.para_question or f.question, f.paraphrase) for f in facts]
        pairs += [(f.para_question or f.question, f.perturbed[j]) for f in facts for j in range(P)]
    lps = answer_logprobs(lm, pairs)
    n = len(facts)
    out: dict[str, Any] = {"nll": _avg_nll(lps[:n]), "token_logprobs": [x.numpy() for x in lps[:n]]}
    if has_tr:
        out["para_nll"] = _avg_nll(lps[n : 2 * n])
        out["pert_nll"] = _avg_nll(lps[2 * n :]).reshape(n, P)
        out["tr"] = M.truth_ratio(out["para_nll"], out["pert_nll"])
        # does the true value beat every wrong one (same template, normalised probability)?
        out["correct"] = out["para_nll"] < out["pert_nll"].min(1)
    if rouge:
        gen = greedy_answers(lm, [f.question for f in facts], max_new)
        out["rouge"] = np.array(
            [M.rouge_l_recall(g, f.answer) for g, f in zip(gen, facts, strict=True)]
        )
        out["generated"] = gen
    return out


def utility_parts(retain: dict[str, Any], world: dict[str, Any] | None) -> dict[str, float]:
    """TOFU's model-utility components on the retain set (probability, ROUGE-L, truth
    ratio) and the world set (probability against the options, ROUGE-L, truth ratio)."""
    parts = {
        "retain_prob": float(M.probability(retain["nll"]).mean()),
        "retain_rouge": float(retain["rouge"].mean()),
    }
    if "tr" in retain:
        parts["retain_tr"] = M.tr_utility(retain["tr"])
    if world is not None:
        parts["world_prob"] = M.prob_with_options(world["nll"], world["pert_nll"])
        parts["world_rouge"] = float(world["rouge"].mean())
        parts["world_tr"] = M.tr_utility(world["tr"])
    return parts


def model_utility(parts: dict[str, float]) -> float:
    return M.harmonic_mean(list(parts.values()))


def mia(forget: dict[str, Any], holdout: dict[str, Any], facts_f, facts_h, k: float) -> dict:
    """MIA AUCs of forget (members) against held-out (non-members) by loss, min-k % and
    zlib ratio, each on the answer given the question."""

    def scores(s: dict[str, Any], facts) -> dict[str, np.ndarray]:
        return {
            "loss": s["nll"],
            "min_k": np.array([M.min_k_score(lp, k) for lp in s["token_logprobs"]]),
            "zlib": np.array(
                [M.zlib_score(x, f.answer) for x, f in zip(s["nll"], facts, strict=True)]
            ),
        }

    a, b = scores(forget, facts_f), scores(holdout, facts_h)
    return {f"mia_{name}": M.mia_auc(a[name], b[name]) for name in a}
