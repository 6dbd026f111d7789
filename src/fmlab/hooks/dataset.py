"""Capturing activations over a dataset in batches, within a memory bound.

A (B, T, D) activation per batch per site adds up fast (12 layers × 10k sentences × 128
tokens × 768 floats is 47 GB), so each batch is *reduced on the fly* before it is kept:

* ``mean``   — mean over the non-padding tokens → (B, D) (sentence embeddings, as
  sentence-transformers pool MiniLM);
* ``last``   — the last non-padding token → (B, D) (what a causal LM predicts from);
* ``first``  — the first non-padding token, BERT's [CLS] / ViT's class token → (B, D);
* ``tokens`` — every non-padding token as its own row → (N_tokens, D) (token-level CKA,
  spectra);
* ``none``   — the full activation (B, T, …).

Kept rows live in memory up to ``max_bytes`` (a clear error past it), or are streamed
to ``shard_dir`` as safetensors shards of about ``shard_bytes`` each, so memory stays
bounded whatever the dataset size. Padding is read from the batch's
``attention_mask``; a site whose (B, T) differs from the mask's (another tower) is
reduced over all its positions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fmlab.errors import UserInputError
from fmlab.hooks.capture import hooked, run_model

REDUCTIONS = ("mean", "last", "first", "tokens", "none")
INDEX = "index.json"


def reduce_activation(t: Tensor, mask: Tensor | None, how: str) -> Tensor:
    """Reduce ``t`` (B, T, …) over positions as ``how`` says; ``mask`` (B, T) marks
    real tokens (None = all). Tensors without a position axis (B, D) pass unchanged."""
    if how not in REDUCTIONS:
        raise UserInputError(f"reduce must be one of {', '.join(REDUCTIONS)}; got {how!r}")
    if how == "none" or t.ndim < 3:
        return t
    B, T = t.shape[:2]
    if mask is None or tuple(mask.shape) != (B, T):
        mask = torch.ones(B, T, dtype=torch.bool, device=t.device)
    mask = mask.to(device=t.device, dtype=torch.bool)
    if how == "tokens":
        return t[mask]  # (N, …)
    if how == "mean":
        w = mask.to(t.dtype).reshape(B, T, *([1] * (t.ndim - 2)))
        return (t * w).sum(1) / w.sum(1).clamp_min(1)  # (B, …)
    pos = torch.arange(T, device=t.device).expand(B, T)
    if how == "first":
        idx = torch.where(mask, pos, T).min(1).values.clamp_max(T - 1)
    else:  # last
        idx = torch.where(mask, pos, -1).max(1).values.clamp_min(0)
    return t[torch.arange(B, device=t.device), idx]  # (B, …)


@dataclass(frozen=True)
class Activations:
    """Captured activations: in memory (``tensors``) or as shards under ``shard_dir``.

    ``acts[site]`` gives one tensor (loading and concatenating the shards);
    ``acts.shards(site)`` iterates shard by shard, for streaming instruments such as
    :class:`fmlab.measure.StreamingLinearCKA`.
    """

    sites: tuple[str, ...]
    reduce: str
    rows: int
    tensors: Mapping[str, Tensor] | None = None
    shard_dir: Path | None = None

    def __getitem__(self, site: str) -> Tensor:
        if site not in self.sites:
            raise KeyError(f"{site!r} was not captured; captured: {', '.join(self.sites)}")
        if self.tensors is not None:
            return self.tensors[site]
        return torch.cat(list(self.shards(site)))

    def shards(self, site: str) -> Iterator[Tensor]:
        if self.tensors is not None:
            yield self.tensors[site]
            return
        from safetensors.torch import load_file

        index = json.loads((Path(self.shard_dir) / INDEX).read_text())
        for shard in index["shards"]:
            yield load_file(Path(self.shard_dir) / shard)[site]


class _Buffer:
    """Per-site lists of reduced batches, flushed to shards or concatenated at the end."""

    def __init__(self, sites: list[str], shard_dir: Path | None):
        self.sites, self.shard_dir = sites, shard_dir
        self.parts: dict[str, list[Tensor]] = {s: [] for s in sites}
        self.nbytes = 0
        self.shards: list[str] = []

    def add(self, site: str, t: Tensor) -> None:
        parts = self.parts[site]
        if parts and parts[0].shape[1:] != t.shape[1:]:
            if self.shard_dir is None:
                raise UserInputError(
                    f"{site}: batches have shapes {tuple(parts[0].shape)} and "
                    f"{tuple(t.shape)}; with reduce='none' pad every batch to one length "
                    "or pass shard_dir"
                )
            self.flush()
        self.parts[site].append(t)
        self.nbytes += t.numel() * t.element_size()

    def flush(self) -> None:
        if self.shard_dir is None or not any(self.parts.values()):
            return
        from safetensors.torch import save_file

        name = f"shard_{len(self.shards):05d}.safetensors"
        save_file(
            {s: torch.cat(p).contiguous() for s, p in self.parts.items()}, self.shard_dir / name
        )
        self.shards.append(name)
        self.parts = {s: [] for s in self.sites}
        self.nbytes = 0


@torch.no_grad()
def capture_dataset(
    model: nn.Module,
    batches: Iterable[Any],
    sites: Iterable[str],
    *,
    reduce: str = "mean",
    mask_key: str = "attention_mask",
    max_bytes: int = 512 * 2**20,
    shard_dir: Path | str | None = None,
    shard_bytes: int = 64 * 2**20,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int], None] | None = None,
) -> Activations:
    """Run ``model`` over ``batches`` and keep each site's activation, reduced.

    ``batches`` yields model inputs (a tokenizer's dict with ``attention_mask``, or a
    tensor). Without ``shard_dir`` everything is kept in memory and exceeding
    ``max_bytes`` raises before more is kept; with it, rows are written to safetensors
    shards of about ``shard_bytes`` and only one shard is held at a time. ``progress``
    is called with the number of batches done.
    """
    sites = list(dict.fromkeys(sites))
    if reduce not in REDUCTIONS:
        raise UserInputError(f"reduce must be one of {', '.join(REDUCTIONS)}; got {reduce!r}")
    if reduce != "none" and any(s.endswith("attn.pattern") for s in sites):
        raise UserInputError("attention patterns are kept whole: use reduce='none'")
    directory = None if shard_dir is None else Path(shard_dir)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    buf = _Buffer(sites, directory)
    rows = 0
    with hooked(model, read=sites) as store:
        for i, batch in enumerate(batches):
            store.clear()
            run_model(model, batch)
            mask = batch.get(mask_key) if isinstance(batch, Mapping) else None
            for site in sites:
                if site not in store:
                    raise RuntimeError(f"batch {i}: the forward pass never reached {site!r}")
                buf.add(site, reduce_activation(store[site], mask, reduce).to(dtype).cpu())
            rows += len(buf.parts[sites[0]][-1])
            if directory is not None and buf.nbytes >= shard_bytes:
                buf.flush()
            elif directory is None and buf.nbytes > max_bytes:
                raise UserInputError(
                    f"captured activations passed max_bytes={max_bytes:,} after {i + 1} "
                    f"batches: capture fewer sites, reduce more (reduce='mean'/'last'), "
                    "raise max_bytes, or stream to disk with shard_dir=..."
                )
            if progress is not None:
                progress(i + 1)
    if directory is None:
        tensors = {s: torch.cat(p) if p else torch.empty(0) for s, p in buf.parts.items()}
        return Activations(tuple(sites), reduce, rows, tensors=tensors)
    buf.flush()
    index = {"sites": sites, "reduce": reduce, "rows": rows, "shards": buf.shards}
    (directory / INDEX).write_text(json.dumps(index, indent=2))
    return Activations(tuple(sites), reduce, rows, shard_dir=directory)
