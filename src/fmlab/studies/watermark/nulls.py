"""Texts without the watermark, and next tokens over many keys.

False-positive rates. Unwatermarked texts (the model's own, and samples of the true
language) are scored against many fresh keys: a false positive is a (text, key) pair the
detector flags. Given the text, the keys' green lists are independent, so the count per
text is Binomial(keys, q_text); the interval (in :mod:`.summary`) treats texts as
clusters. KGW with one token of context has a fast exact path: a text's green count under
key k is ``C @ green_k`` for its matrix ``C`` of (previous, next) token counts.

Distortion. At fixed contexts from the model's own text, one next token is drawn per key
for many keys: over keys, a distortion-free scheme's tokens follow the model's
distribution exactly, which a χ² goodness-of-fit test checks (:func:`fmlab.watermark.
theory.chi_square_gof`); KGW's do not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import sparse

from fmlab.watermark import prf
from fmlab.watermark.detect import FPR_PAPER, Z_PAPER, binomial_test, gamma_test, scored_mask
from fmlab.watermark.generate import Generation
from fmlab.watermark.gumbel import Gumbel
from fmlab.watermark.kgw import KGW
from fmlab.watermark.synthid import SynthID
from fmlab.watermark.theory import chi_square_gof, kl

Z_BINS = np.arange(-6.0, 8.01, 0.25)  # histogram edges of null z-scores (figures)
_BLOCK = 2**25  # green-table entries per block of keys


def _rates(z: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Per-text counts of flagged keys and the z moments of (texts, keys) arrays."""
    return {
        "fp_z4": (z >= Z_PAPER).sum(1).tolist(),
        "fp_p": (p <= FPR_PAPER).sum(1).tolist(),
        "fp_1e-3": (p <= 1e-3).sum(1).tolist(),
        "keys": int(z.shape[1]),
        "z_mean": float(np.nanmean(z)),
        "z_sd": float(np.nanstd(z)),
        "z_hist": np.histogram(np.nan_to_num(z, nan=0.0), Z_BINS)[0].tolist(),
    }


def kgw_null(scheme: KGW, ids: np.ndarray, P: int, keys: np.ndarray, dedupe: bool) -> dict:
    """Every text against every key, through the (previous, next) count matrix."""
    V = scheme.vocab_size
    scored = scored_mask(ids, P, 1, dedupe=dedupe)
    rows, cols = np.nonzero(scored)
    codes = ids[rows, cols - 1] * V + ids[rows, cols]
    C = sparse.csr_matrix((np.ones(len(rows)), (rows, codes)), shape=(len(ids), V * V))
    n = scored.sum(1)[:, None].astype(float)
    step = max(1, _BLOCK // (V * V))
    green = np.empty((len(ids), len(keys)))
    contexts = np.arange(V)[:, None]
    for i in range(0, len(keys), step):
        block = keys[i : i + step]
        table = scheme.green_rows(np.repeat(block, V), np.tile(contexts, (len(block), 1)))
        green[:, i : i + step] = C @ table.reshape(len(block), V * V).T.astype(float)
    t = binomial_test(green, n, scheme.gamma_exact)
    return _rates(t["z"], t["p_value"]) | {"z_sd_exact": _exact_sd(C, V)}


def _exact_sd(C: sparse.csr_matrix, V: int) -> float:
    """The null z-score's standard deviation the scored counts imply exactly, for green
    lists that are uniformly random subsets of a fixed size: sqrt(mean over texts of
    Var(G) / (nγ(1-γ))). A repeated (previous, next) pair adds its colour again (variance
    ∝ count²); the colours of distinct next tokens after one previous token are negatively
    correlated, -γ(1-γ)/(V-1) (a finite-vocabulary correction, < 1 when repeats are few)."""
    coo = C.tocoo()
    row_sum, row_sq = np.zeros((C.shape[0], V)), np.zeros((C.shape[0], V))
    np.add.at(row_sum, (coo.row, coo.col // V), coo.data)  # per (text, previous token)
    np.add.at(row_sq, (coo.row, coo.col // V), coo.data**2)
    var = (row_sq - (row_sum**2 - row_sq) / (V - 1)).sum(-1)  # / γ(1-γ)
    n = row_sum.sum(-1)
    return float(np.sqrt(np.mean(var[n > 0] / n[n > 0])))


def gumbel_null(scheme: Gumbel, ids: np.ndarray, P: int, keys: np.ndarray, dedupe: bool) -> dict:
    scored = scored_mask(ids, P, scheme.context_width, dedupe=dedupe)
    n = scored.sum(1)
    zs, ps = [], []
    for key in keys:
        s = np.where(scored, np.nan_to_num(scheme.token_scores(ids, key)), 0.0).sum(1)
        t = gamma_test(s, n)
        zs.append(t["z"])
        ps.append(t["p_value"])
    return _rates(np.stack(zs, 1), np.stack(ps, 1))


def synthid_null(scheme: SynthID, ids: np.ndarray, P: int, keys: np.ndarray, dedupe: bool) -> dict:
    zs, ps = [], []
    for key in keys:
        r = scheme.detect_batch(ids, int(key >> np.uint64(1)), P, dedupe=dedupe)
        zs.append(r["z"])
        ps.append(r["p_value"])
    return _rates(np.stack(zs, 1), np.stack(ps, 1))


def null_rates(
    cfg: Any, arms: dict[str, Any], texts: dict[str, torch.Tensor], P: int, seed: int
) -> dict[str, dict[str, Any]]:
    """``{source: {detector: rates}}`` for the unwatermarked ``texts`` (``model``,
    ``true``); KGW both with repeats counted once and counted each time (``kgw_raw``)."""
    kgw = next(s for s in arms.values() if isinstance(s, KGW))
    out: dict[str, dict[str, Any]] = {}
    for source, tokens in texts.items():
        ids = tokens.numpy()
        keys = prf.derive_keys(seed * 7919 + 17, cfg.fpr_keys)
        res = {
            "kgw": kgw_null(kgw, ids, P, keys, cfg.dedupe),
            "kgw_raw": kgw_null(kgw, ids, P, keys, False),
            "gumbel": gumbel_null(arms["gumbel"], ids, P, keys[: cfg.fpr_keys_slow], cfg.dedupe),
        }
        if "synthid" in arms:
            few = keys[: cfg.fpr_keys_slow]
            res["synthid"] = synthid_null(arms["synthid"], ids, P, few, cfg.dedupe)
        out[source] = res
    return out


def gof(cfg: Any, kgw: KGW, arms: dict[str, Any], null: Generation, seed: int) -> dict:
    """At ``cfg.gof_contexts`` contexts of the model's own text, one next token per key
    for ``cfg.gof_keys`` keys and each scheme; the χ² test of the counts against the
    model's distribution, and for KGW the exact KL of its key-averaged distribution."""
    rng = np.random.default_rng(cfg.eval_seed + seed)
    n, T = null.generated.shape
    P = null.prompt_len
    width = max(arm.context_width for arm in arms.values()) + 1  # SynthID's n-gram
    rows = rng.integers(0, n, cfg.gof_contexts)
    cols = rng.integers(max(0, width - P), T, cfg.gof_contexts)
    p = null.logprobs[rows, cols].double().exp().numpy()  # (M, V) the model's next-token law
    p /= p.sum(-1, keepdims=True)
    ctx = np.stack(
        [null.tokens[r, P + c - width : P + c].numpy() for r, c in zip(rows, cols, strict=True)]
    )
    M, V = p.shape
    keys = prf.derive_keys(seed * 104_729 + 3, cfg.gof_keys)
    K = len(keys)
    gen = torch.Generator().manual_seed(cfg.eval_seed + 31 * seed)
    key_rep, ctx_rep, p_rep = np.repeat(keys, M), np.tile(ctx, (K, 1)), np.tile(p, (K, 1))
    out: dict[str, Any] = {}

    green = kgw.green_rows(key_rep, ctx_rep[:, -1:])
    biased = p_rep * np.exp(kgw.delta * green)
    biased /= biased.sum(-1, keepdims=True)
    drawn = torch.multinomial(torch.from_numpy(biased), 1, generator=gen)[:, 0].numpy()
    out["kgw"] = _gof_counts(drawn, M, V, p)
    out["kgw"]["kl_key_marginal"] = float(kl(biased.reshape(K, M, V).mean(0), p).mean())

    gumbel: Gumbel = arms["gumbel"]
    drawn = gumbel.choose(p_rep, gumbel.uniforms(key_rep, ctx_rep))
    out["gumbel"] = _gof_counts(drawn, M, V, p)

    if "synthid" in arms:
        synth: SynthID = arms["synthid"]
        window = torch.from_numpy(ctx[:, -synth.ngram_len :])
        logp = torch.log(torch.from_numpy(p))
        draws = []
        for key in keys:
            proc = synth.start(window, int(key >> np.uint64(1)))
            wm = synth.reweight(proc, window, logp).exp()
            draws.append(torch.multinomial(wm / wm.sum(-1, keepdim=True), 1, generator=gen)[:, 0])
        out["synthid"] = _gof_counts(torch.cat(draws).numpy(), M, V, p)
    return out


def _gof_counts(drawn: np.ndarray, M: int, V: int, p: np.ndarray) -> dict[str, Any]:
    counts = np.zeros((M, V))
    np.add.at(counts, (np.tile(np.arange(M), len(drawn) // M), drawn), 1)
    return chi_square_gof(counts, p)
