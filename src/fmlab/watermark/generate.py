"""Sampling text with or without a watermark from any next-token model.

A model is a function ``next_logprobs(ids) -> (B, V)`` log-probabilities of the next token
after the ids ``(B, t)``: :func:`gpt_next` wraps an fmlab GPT (with a sliding window),
:func:`hf_next` a ``transformers`` causal LM, and a language with known probabilities
can be passed directly. :func:`generate` draws ``n`` tokens after each prompt, every
text with its own key, and can record the model's and the watermarked next-token
distributions at every step — what the exact quality cost is computed from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fmlab.watermark.gumbel import Gumbel
from fmlab.watermark.kgw import KGW
from fmlab.watermark.synthid import SynthID

NextLogprobs = Callable[[torch.Tensor], torch.Tensor]
Scheme = KGW | Gumbel | SynthID


@dataclass(frozen=True)
class Generation:
    """Prompts and continuations ``tokens`` (B, P + n) on the CPU; with ``record`` also
    the model's log-probabilities ``logprobs`` (B, n, V) at every generated position and
    the watermarked ones ``wm_logprobs`` (KGW, SynthID; the Gumbel scheme's are point
    masses)."""

    tokens: torch.Tensor
    prompt_len: int
    logprobs: torch.Tensor | None = None
    wm_logprobs: torch.Tensor | None = None

    @property
    def generated(self) -> torch.Tensor:
        return self.tokens[:, self.prompt_len :]


def gpt_next(model: torch.nn.Module, window: int) -> NextLogprobs:
    """An fmlab GPT as a next-token model that sees the last ``window`` tokens."""
    from fmlab.device import device_of

    device = device_of(model)

    @torch.no_grad()
    def next_logprobs(ids: torch.Tensor) -> torch.Tensor:
        logits = model(ids[:, -window:].to(device), last_only=True)[:, -1]
        return logits.double().log_softmax(-1).cpu()

    return next_logprobs


def hf_next(model: Any) -> NextLogprobs:
    """A ``transformers`` causal LM (no cache: tiny models, short texts). A text longer
    than the model's positions is cut to its last ``n_positions`` tokens (a sliding
    window), so small exported models generate any length."""
    device = next(model.parameters()).device
    config = getattr(model, "config", None)
    window = getattr(config, "n_positions", None) or getattr(
        config, "max_position_embeddings", None
    )

    @torch.no_grad()
    def next_logprobs(ids: torch.Tensor) -> torch.Tensor:
        ids = (ids[:, -window:] if window else ids).to(device)
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1]
        return logits.double().log_softmax(-1).cpu()

    return next_logprobs


def _one_key(keys: Any) -> int:
    arr = np.unique(np.asarray(keys).reshape(-1))
    if len(arr) != 1:
        raise ValueError("SynthID generates a batch with one key (its processor keeps state)")
    return int(arr[0])


def step_sampler(scheme: Scheme | None, prompts: torch.Tensor, keys: Any) -> Callable:
    """``step(ids, logprobs, generator) -> (tokens, watermarked logprobs or None)``."""
    if scheme is None:

        def plain(ids, lp, gen):
            return torch.multinomial(lp.exp(), 1, generator=gen)[:, 0], None

        return plain
    if isinstance(scheme, KGW):

        def kgw(ids, lp, gen):
            wm = scheme.bias(lp, ids, keys).log_softmax(-1)
            return torch.multinomial(wm.exp(), 1, generator=gen)[:, 0], wm

        return kgw
    if isinstance(scheme, Gumbel):
        return lambda ids, lp, gen: (scheme.sample(ids, lp, keys), None)
    if isinstance(scheme, SynthID):
        proc = scheme.start(prompts, _one_key(keys))

        def synthid(ids, lp, gen):
            wm = scheme.reweight(proc, ids, lp)
            return torch.multinomial(wm.exp(), 1, generator=gen)[:, 0], wm

        return synthid
    raise TypeError(f"unknown scheme {type(scheme).__name__}")


def generate(
    next_logprobs: NextLogprobs,
    prompts: torch.Tensor,
    n_new: int,
    scheme: Scheme | None = None,
    keys: Any = 0,
    *,
    generator: torch.Generator,
    record: bool = False,
) -> Generation:
    """``n_new`` tokens after each prompt (B, P), each row with its key (``keys`` (B,) or
    one); randomness from ``generator`` only (the Gumbel scheme draws none)."""
    prompts = prompts.cpu().long()
    step = step_sampler(scheme, prompts, keys)
    ids = prompts
    lps, wms = [], []
    for _ in range(n_new):
        lp = next_logprobs(ids).double()
        token, wm = step(ids, lp, generator)
        if record:
            lps.append(lp.float())
            if wm is not None:
                wms.append(wm.float())
        ids = torch.cat([ids, token[:, None].cpu()], dim=1)
    return Generation(
        tokens=ids,
        prompt_len=prompts.shape[1],
        logprobs=torch.stack(lps, 1) if record and lps else None,
        wm_logprobs=torch.stack(wms, 1) if record and wms else None,
    )


def hf_processor(scheme: KGW, key: int) -> Any:
    """fmlab's KGW as a ``transformers`` ``LogitsProcessor`` for ``model.generate(...,
    logits_processor=LogitsProcessorList([...]))``."""
    from transformers import LogitsProcessor

    class FmlabKGW(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            return scheme.bias(scores, input_ids, key)

    return FmlabKGW()
