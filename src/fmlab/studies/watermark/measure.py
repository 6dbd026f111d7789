"""One seed of the ``watermark`` study: generate unwatermarked and watermarked texts,
detect them at growing lengths, measure the exact quality cost, collect the per-token
data of Theorem 4.2's bins, and attack the texts.

Every text has its own key (KGW, Gumbel; SynthID: one key per seed, since its processor
keeps state across the batch). Detection scores the generated tokens only — the prompt
is context, never scored — with repeated n-grams counted once when ``cfg.dedupe``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fmlab.store import Run
from fmlab.studies.watermark.nulls import gof, null_rates
from fmlab.studies.watermark.source import Source
from fmlab.watermark import prf
from fmlab.watermark.attacks import expected_green_after_substitution, resample_spans, substitute
from fmlab.watermark.detect import FPR_PAPER, Z_PAPER
from fmlab.watermark.generate import Generation, generate
from fmlab.watermark.gumbel import Gumbel
from fmlab.watermark.kgw import KGW
from fmlab.watermark.synthid import SynthID
from fmlab.watermark.theory import green_bound, kl, spike_entropy, spike_modulus


def schemes(cfg: Any, vocab: int) -> dict[str, Any]:
    """Every arm, by name: ``kgw_d<δ>`` for each δ, ``gumbel``, ``synthid``."""
    out: dict[str, Any] = {
        kgw_name(d): KGW(vocab, cfg.gamma, d, cfg.seeding) for d in sorted(set(cfg.deltas))
    }
    out["gumbel"] = Gumbel(vocab, cfg.gumbel_context)
    if cfg.synthid:
        out["synthid"] = SynthID(vocab, cfg.synthid_context + 1, cfg.synthid_depth)
    return out


def kgw_name(delta: float) -> str:
    return f"kgw_d{delta:g}"


def detector(scheme: Any, keys: np.ndarray, synth_key: int):
    """``detect(ids, start, dedupe) -> dict`` with the right key(s) for ``scheme``."""
    key = synth_key if isinstance(scheme, SynthID) else keys
    return lambda ids, start, dedupe=True: scheme.detect_batch(ids, key, start, dedupe=dedupe)


def decisions(r: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean z and the detection rates of one batch: z >= 4 (the paper's rule) and the
    exact p-value below 3.2e-5 and below 1e-3."""
    return {
        "z_mean": float(np.nanmean(r["z"])),
        "tpr_z4": float(np.mean(r["z"] >= Z_PAPER)),
        "tpr_p": float(np.mean(r["p_value"] <= FPR_PAPER)),
        "tpr_1e-3": float(np.mean(r["p_value"] <= 1e-3)),
        "n_scored": float(np.mean(r["n"])),
    }


def quality(src: Source, g: Generation, exact: bool = True) -> dict[str, float]:
    """Per token, averaged over texts: the exact ``KL(watermarked ‖ model)`` where the
    watermarked step is a distribution, and the cross-entropy under the true language —
    sampled (``-log q(x_t)``) and, where each step is a distribution (no watermark, KGW,
    SynthID; not the Gumbel scheme's point masses), exact: expected over that step."""
    out: dict[str, float] = {"repeat4": repeated_ngrams(g.generated.numpy(), 4)}
    p = g.logprobs.double().exp() if g.logprobs is not None else None
    wm = g.wm_logprobs.double().exp() if g.wm_logprobs is not None else None
    if wm is not None and p is not None:
        out["kl"] = float(kl(wm.numpy(), p.numpy()).mean())
    if src.lang is not None:
        P = g.prompt_len
        q = src.lang.next_token_probs(g.tokens)[:, P - 1 : -1]  # (n, T, V) true next-token laws
        nlq = -torch.log(q.clamp_min(1e-300))
        x = g.tokens[:, P:]
        out["ce_true_sampled"] = float(nlq.gather(-1, x[..., None]).mean())
        dist = wm if wm is not None else p
        if dist is not None and exact:
            out["ce_true_exact"] = float((dist * nlq).sum(-1).mean())
    return out


def repeated_ngrams(tokens: np.ndarray, n: int) -> float:
    """Mean share of a text's n-grams that repeat an earlier one (0: all distinct)."""
    if tokens.shape[1] < n:
        return float("nan")
    grams = np.lib.stride_tricks.sliding_window_view(tokens, n, axis=1)
    shares = [1 - len(np.unique(row, axis=0)) / len(row) for row in grams]
    return float(np.mean(shares))


def curves(det, tokens: torch.Tensor, P: int, lengths: list[int], dedupe: bool) -> dict:
    """Detection of the first ``T`` generated tokens, for every ``T`` in ``lengths``."""
    ids = tokens.numpy()
    return {T: decisions(det(ids[:, : P + T], P, dedupe)) for T in lengths}


def bin_data(scheme: KGW, g: Generation, keys: np.ndarray) -> dict[str, np.ndarray]:
    """Per generated token of a KGW text: the model's spike entropy, Theorem 4.2's bound,
    the realised colour and the exact green probability of the biased step."""
    P = g.prompt_len
    p = g.logprobs.double().exp().numpy()  # (n, T, V)
    n, T, V = p.shape
    ctx = g.tokens[:, P - 1 : -1].reshape(-1, 1).numpy()
    green = scheme.green_rows(np.repeat(keys, T), ctx).reshape(n, T, V)
    wm = g.wm_logprobs.double().exp().numpy()
    flags = scheme.green_flags(g.tokens.numpy(), keys)[:, P:]
    return {
        "spike": spike_entropy(p, spike_modulus(scheme.gamma_exact, scheme.delta)),
        "bound": green_bound(p, scheme.gamma_exact, scheme.delta),
        "green": flags,
        "p_green": (wm * green).sum(-1),
    }


def attack(cfg: Any, src: Source, scheme: Any, det, tokens: torch.Tensor, keys, gen) -> dict:
    """Substitution (0-50 %) and span re-sampling; for KGW also the measured green count
    (all tokens scored) against its exact expectation after substitution."""
    P, V = src.prompts.shape[1], src.vocab_size
    out: dict[str, Any] = {"substitution": {}, "spans": {}}
    flags0 = scheme.green_flags(tokens.numpy(), keys)[:, P:] if isinstance(scheme, KGW) else None
    for eps in cfg.substitution:
        attacked, _ = substitute(tokens, P, eps, V, gen)
        row = decisions(det(attacked.numpy(), P, cfg.dedupe))
        if flags0 is not None:
            raw = det(attacked.numpy(), P, False)
            k = round(eps * flags0.shape[1])
            pred = expected_green_after_substitution(flags0, k, 1, scheme.gamma_exact, V)
            row["green_measured"] = raw["green"].tolist()
            row["green_expected"] = pred.tolist()
        out["substitution"][eps] = row
    for frac in cfg.span_fracs:
        attacked, _ = resample_spans(tokens, P, frac, cfg.span_len, src.next_logprobs, gen)
        out["spans"][frac] = decisions(det(attacked.numpy(), P, cfg.dedupe))
    return out


def measure_seed(cfg: Any, src: Source, seed: int, run: Run) -> dict[str, Any]:
    P, T = src.prompts.shape[1], cfg.length
    n = src.prompts.shape[0]
    keys = prf.derive_keys(seed, n)
    synth_key = int(prf.derive_keys(seed + 10_007, 1)[0] >> np.uint64(1))
    gen = torch.Generator().manual_seed(cfg.eval_seed + 1009 * seed)
    arms = schemes(cfg, src.vocab_size)
    main = kgw_name(cfg.delta)
    res: dict[str, Any] = {"seed": seed, "info": src.info, "curves": {}, "quality": {}}
    res["gamma_exact"] = arms[main].gamma_exact

    null = generate(src.next_logprobs, src.prompts, T, None, generator=gen, record=True)
    res["quality"]["none"] = quality(src, null)
    texts = {"model": null.tokens}
    if src.lang is not None:
        true = src.lang.sample(n, P + T, gen)
        texts["true"] = true
        res["quality"]["true"] = {
            "ce_true_sampled": _sampled_ce(src, true, P),
            "repeat4": repeated_ngrams(true[:, P:].numpy(), 4),
        }
    res["null"] = null_rates(cfg, arms, texts, P, seed)
    res["gof"] = gof(cfg, arms[main], arms, null, seed)
    for name, scheme in arms.items():
        keys_for = synth_key if isinstance(scheme, SynthID) else keys
        g = generate(
            src.next_logprobs, src.prompts, T, scheme, keys_for, generator=gen, record=True
        )
        det = detector(scheme, keys, synth_key)
        res["curves"][name] = curves(det, g.tokens, P, cfg.lengths, cfg.dedupe)
        res["quality"][name] = quality(src, g, exact=not isinstance(scheme, Gumbel))
        for L, row in res["curves"][name].items():
            run.log(L, row, seed=seed, scheme=name, phase="detect")
        if name == main:
            res["bins"] = bin_data(scheme, g, keys)
        if name in (main, "gumbel"):
            res.setdefault("attacks", {})[name] = attack(cfg, src, scheme, det, g.tokens, keys, gen)
        if name == main and src.decode is not None:
            res["example"] = src.decode(g.tokens[0].tolist())
    return res


def _sampled_ce(src: Source, tokens: torch.Tensor, P: int) -> float:
    q = src.lang.next_token_probs(tokens)[:, P - 1 : -1]
    return float(-torch.log(q.gather(-1, tokens[:, P:, None]).clamp_min(1e-300)).mean())
