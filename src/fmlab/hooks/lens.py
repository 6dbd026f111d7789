"""The logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens"): decode each
layer's residual stream with the model's own final norm and unembedding, to see how
early the final prediction takes shape. At the last layer the lens *is* the model's
output, which the tests check exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from fmlab.errors import UserInputError
from fmlab.hooks.capture import capture
from fmlab.hooks.sites import family_of, resolve_sites


@dataclass(frozen=True)
class LensResult:
    """``logits[l]`` (B, T, V) decodes ``layers[l]``; ``final_logits`` are the model's."""

    layers: tuple[str, ...]
    logits: Tensor  # (L, B, T, V)
    final_logits: Tensor  # (B, T, V)


def block_sites(model: nn.Module, kind: str = "resid_post", tower: str = "") -> list[str]:
    """``[{tower.}blocks.0.{kind}, …]`` in block order."""
    pre = f"{tower}." if tower else ""
    names = [n for n in resolve_sites(model) if n.startswith(f"{pre}blocks.")]
    out = [n for n in names if n.endswith(f".{kind}") and n.count(".") == pre.count(".") + 2]
    if not out:
        raise UserInputError(f"this model has no {pre}blocks.{{i}}.{kind} sites")
    return sorted(out, key=lambda n: int(n.split(".")[pre.count(".") + 1]))


def unembedding(model: nn.Module, tower: str = "") -> Any:
    """The function from a residual stream (B, T, D) to logits, or a clear error."""
    family = family_of(model)
    fn = family.lens(model, tower)
    if fn is None:
        raise UserInputError(
            f"the logit lens needs an output head: {type(model).__name__} (family "
            f"{family.name}) has none. Load the model with its LM head "
            "(task='causal-lm' or 'masked-lm')."
        )
    return fn


@torch.no_grad()
def logit_lens(model: nn.Module, inputs: Any, *, tower: str = "") -> LensResult:
    """Decode every block's ``resid_post`` with the final norm + unembedding.

    Memory is L·B·T·V floats: for a large vocabulary pass short inputs, or use
    :func:`lens_metrics` per layer on your own captures.
    """
    decode = unembedding(model, tower)
    layers = block_sites(model, "resid_post", tower)
    acts = capture(model, inputs, [*layers, "logits"])
    stacked = torch.stack([decode(acts[name]) for name in layers])  # (L, B, T, V)
    return LensResult(tuple(layers), stacked, acts["logits"])


@torch.no_grad()
def lens_metrics(
    layer_logits: Tensor, final_logits: Tensor, targets: Tensor, mask: Tensor | None = None
) -> dict[str, float]:
    """How close one layer's decoded distribution is to the model's, over kept positions.

    layer_logits, final_logits (B, T, V); targets (B, T) token ids to score (the next
    token for a causal LM); mask (B, T) bool of positions to keep. Returns the mean
    log-probability of the target, top-1 agreement with the model's own argmax, top-1
    accuracy on the target, and KL(model ‖ lens) in nats.
    """
    keep = torch.ones(targets.shape, dtype=torch.bool) if mask is None else mask.bool()
    lp = torch.log_softmax(layer_logits[keep].double(), -1)  # (N, V)
    lq = torch.log_softmax(final_logits[keep].double(), -1)  # (N, V)
    y = targets[keep]
    return {
        "target_logprob": lp.gather(1, y[:, None]).mean().item(),
        "agreement": (lp.argmax(-1) == lq.argmax(-1)).double().mean().item(),
        "accuracy": (lp.argmax(-1) == y).double().mean().item(),
        "kl_final": (lq.exp() * (lq - lp)).sum(-1).mean().item(),
    }
