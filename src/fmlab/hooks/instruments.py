"""The validated instruments of :mod:`fmlab.measure`, applied to a model layer by layer.

Each function takes a model, its tokenizer and texts, captures activations with
:func:`fmlab.hooks.capture_dataset` (batched, reduced, memory-bounded) and returns
plain results; :mod:`fmlab.studies.inspect` records them as a run and ``fmlab
inspect`` drives it from the command line.

Layers are ``embed`` then each block's output (``blocks.{i}.resid_post`` by default;
any per-block site kind can be chosen), labelled ``embed, 0, 1, …``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fmlab.errors import UserInputError
from fmlab.hooks.capture import capture, hooked
from fmlab.hooks.dataset import capture_dataset
from fmlab.hooks.lens import block_sites, lens_metrics, unembedding
from fmlab.hooks.sites import resolve_sites

Track = Callable[[Iterable[Any], int, str], Iterable[Any]]


def _no_track(items: Iterable[Any], total: int, label: str) -> Iterable[Any]:
    return items


def encode(tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int) -> list[dict]:
    """Tokenised, right-padded batches (dicts of input_ids and attention_mask)."""
    if tokenizer is None:
        raise UserInputError("this model has no tokenizer: fmlab inspect needs a text model")
    batches = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[i : i + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batches.append({k: enc[k] for k in ("input_ids", "attention_mask") if k in enc})
    return batches


def layers(model: nn.Module, kind: str = "resid_post") -> tuple[list[str], list[str]]:
    """(labels, site names) of the layers of a single-tower model."""
    sites = resolve_sites(model)
    if "embed" not in sites:
        towers = sorted({n.split(".")[0] for n in sites if n.split(".")[0] != "logits"})
        raise UserInputError(
            f"{type(model).__name__} has several towers ({', '.join(towers)}); fmlab inspect "
            "reads single-tower text models. Use fmlab.hooks from Python for the others."
        )
    blocks = block_sites(model, kind)
    labels = ["embed", *(str(i) for i in range(len(blocks)))]
    return labels, ["embed", *blocks]


def activations(
    model: nn.Module,
    batches: list[dict],
    sites: list[str],
    reduce: str,
    max_bytes: int,
    track: Track = _no_track,
) -> list[Tensor]:
    acts = capture_dataset(
        model, track(batches, len(batches), "capture"), sites, reduce=reduce, max_bytes=max_bytes
    )
    return [acts[s] for s in sites]


# ------------------------------------------------------------------------ CKA
@dataclass(frozen=True)
class CKAResult:
    labels_a: tuple[str, ...]
    labels_b: tuple[str, ...]
    matrix: np.ndarray  # (La, Lb)
    n: int


def cka_layers(
    acts_a: list[Tensor], acts_b: list[Tensor] | None, labels_a, labels_b, kind: str
) -> CKAResult:
    from fmlab.measure import cka_matrix

    rows_a = {len(a) for a in acts_a}
    if acts_b is not None and {len(b) for b in acts_b} != rows_a:
        raise UserInputError(
            f"the two models give different numbers of rows ({rows_a.pop()} and "
            f"{len(acts_b[0])}): their tokenizers split the texts differently. "
            "Compare sentence representations instead: --set reduce=mean"
        )
    matrix = cka_matrix(acts_a, acts_b, kind=kind)
    return CKAResult(tuple(labels_a), tuple(labels_b or labels_a), matrix, len(acts_a[0]))


# ---------------------------------------------------------------------- probes
def probe_layers(feats: list[Tensor], labels: Sequence[int], seed: int) -> list[Any]:
    """A linear probe with its control task (Hewitt & Liang 2019) on every layer."""
    from fmlab.measure import linear_probe

    return [linear_probe(f, np.asarray(labels), seed=seed) for f in feats]


def spectra_layers(feats: list[Tensor]) -> list[Any]:
    from fmlab.measure import activation_spectra

    return [activation_spectra(f) for f in feats]


# ------------------------------------------------------------------- LM heads
def lm_kind(model: nn.Module) -> str:
    """``causal`` or ``masked`` by the model class; anything else has no LM head."""
    name = type(model).__name__
    if "CausalLM" in name or "LMHeadModel" in name:
        return "causal"
    if "MaskedLM" in name:
        return "masked"
    from fmlab.models.gpt import GPT

    if isinstance(model, GPT):
        return "causal"
    raise UserInputError(
        f"{name} has no language-model head: this instrument needs a causal or masked LM "
        "(load with --task causal-lm or masked-lm)"
    )


def _targets(model, tokenizer, batch: dict, seed: int) -> tuple[dict, Tensor, Tensor]:
    """Inputs to run, target ids (B, T) and the mask (B, T) of scored positions."""
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    if lm_kind(model) == "causal":
        targets = torch.roll(ids, -1, dims=1)
        keep = mask & torch.roll(mask, -1, dims=1)
        keep[:, -1] = False  # the last position has no next token in the batch
        return batch, targets, keep
    mask_id = getattr(tokenizer, "mask_token_id", None)
    if mask_id is None:
        raise UserInputError("masked-LM calibration needs a tokenizer with a mask token")
    g = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(ids.shape, generator=g) < 0.15) & mask  # BERT's 15 % (Devlin 2019)
    for special in set(getattr(tokenizer, "all_special_ids", [])):
        chosen &= ids != special
    return {**batch, "input_ids": ids.masked_fill(chosen, mask_id)}, ids, chosen


@torch.no_grad()
def token_logits(
    model, tokenizer, batches: list[dict], max_rows: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Logits (N, V) and targets (N,) of the scored positions, at most ``max_rows``."""
    rows, ys, n = [], [], 0
    for batch in batches:
        inputs, targets, keep = _targets(model, tokenizer, batch, seed + n)
        logits = capture(model, inputs, ["logits"])["logits"]
        rows.append(logits[keep].float())
        ys.append(targets[keep])
        n += int(keep.sum())
        if n >= max_rows:
            break
    return torch.cat(rows)[:max_rows], torch.cat(ys)[:max_rows]


def calibration(logits: Tensor, targets: Tensor, seed: int) -> dict[str, Any]:
    """Guo et al. 2017 calibration of token predictions, and temperature scaling fitted
    on one random half of the tokens and evaluated on the other."""
    from fmlab.measure import apply_temperature, calibration_report, fit_temperature, softmax

    n = len(targets)
    if n < 20:
        raise UserInputError(f"only {n} scored tokens: give more or longer texts")
    perm = np.random.default_rng(seed).permutation(n)
    fit, held = perm[: n // 2], perm[n // 2 :]
    Z, y = logits.double().numpy(), targets.numpy()
    temp = fit_temperature(Z[fit], y[fit])
    before = calibration_report(softmax(Z[held]), y[held])
    after = calibration_report(apply_temperature(Z[held], temp.temperature), y[held])
    return {"before": before, "after": after, "temperature": temp.temperature, "n": n}


@torch.no_grad()
def lens_layers(model, batches: list[dict], kind: str = "resid_post") -> list[dict[str, float]]:
    """Logit-lens metrics (:func:`lens_metrics`) of every block, pooled over batches,
    for a causal LM (next-token targets)."""
    if lm_kind(model) != "causal":
        raise UserInputError("the logit lens instrument reads decoder (causal) LMs")
    decode = unembedding(model)
    names = block_sites(model, kind)
    sums: list[dict[str, float]] = [{} for _ in names]
    total = 0
    with hooked(model, read=[*names, "logits"]) as store:
        for batch in batches:
            model(**batch)
            ids, mask = batch["input_ids"], batch["attention_mask"].bool()
            keep = mask & torch.roll(mask, -1, dims=1)
            keep[:, -1] = False
            k = int(keep.sum())
            for i, name in enumerate(names):
                m = lens_metrics(decode(store[name]), store["logits"], torch.roll(ids, -1, 1), keep)
                for key, value in m.items():
                    sums[i][key] = sums[i].get(key, 0.0) + value * k
            total += k
    return [{key: v / total for key, v in s.items()} for s in sums]
