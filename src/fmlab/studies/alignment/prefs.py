"""Preference pairs with a known truth, and a user's pair file.

For each prompt the reference policy writes two completions; their true rewards
``r_1, r_2`` are computable (:func:`fmlab.studies.alignment.policy.true_reward`). The
label follows Bradley–Terry on the true reward,

    P(y_1 ≻ y_2) = σ((r_1 - r_2) / temperature)           (Bradley & Terry 1952),

drawn from a seeded generator, or — the deterministic variant of Azar et al. 2023 §4 —
``y_1 ≻ y_2`` exactly when ``r_1 > r_2`` (tied pairs carry no preference and are
dropped). DPO's derivation reads the same BT model with reward ``r / temperature``, so
its β and the RL baseline's KL coefficient act on the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from fmlab.errors import UserInputError
from fmlab.jsonl import read_objects


@dataclass
class Pairs:
    prompts: Tensor  # (N, P)
    chosen: Tensor  # (N, L)
    rejected: Tensor  # (N, L)
    p_first: Tensor  # (N,) float64: P(first completion preferred) under the labelling rule
    first: Tensor  # (N,) bool: the first completion was preferred

    def __len__(self) -> int:
        return len(self.prompts)

    def sequences(self) -> tuple[Tensor, Tensor]:
        """(N, P + L) chosen and rejected sequences, prompt included."""
        return torch.cat([self.prompts, self.chosen], 1), torch.cat(
            [self.prompts, self.rejected], 1
        )


def bt_probability(r1: Tensor, r2: Tensor, temperature: float) -> Tensor:
    """P(y_1 ≻ y_2) = σ((r_1 - r_2) / temperature), float64."""
    return torch.sigmoid((r1.double() - r2.double()) / temperature)


def label(
    prompts: Tensor,
    y1: Tensor,
    y2: Tensor,
    r1: Tensor,
    r2: Tensor,
    *,
    temperature: float,
    deterministic: bool,
    generator: torch.Generator,
) -> Pairs:
    """Preference pairs from two completions per prompt (see the module docstring)."""
    if deterministic:
        keep = r1 != r2
        prompts, y1, y2, r1, r2 = prompts[keep], y1[keep], y2[keep], r1[keep], r2[keep]
        first = r1 > r2
        p = first.double()
    else:
        p = bt_probability(r1, r2, temperature)
        first = torch.rand(len(p), dtype=torch.float64, generator=generator) < p
    f = first[:, None]
    return Pairs(prompts, torch.where(f, y1, y2), torch.where(f, y2, y1), p, first)


def read_pairs(path: str | Path, vocab_size: int | None = None) -> list[dict]:
    """A JSONL file of preference pairs, one ``{"prompt", "chosen", "rejected"}`` object a
    line: strings (text for a tokenizer) or lists of token ids (``< vocab_size``). Any
    malformed line is a :class:`UserInputError` naming the file and the line."""
    p = Path(path)
    out = []
    for where, row in read_objects(p, "pair file", "an object with prompt, chosen, rejected"):
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in row]
        if missing:
            raise UserInputError(f"{where}: missing {', '.join(missing)}")
        for key in ("prompt", "chosen", "rejected"):
            _check_value(row[key], key, where, vocab_size)
        if row["chosen"] == row["rejected"]:
            raise UserInputError(f"{where}: chosen and rejected are the same")
        out.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
    if not out:
        raise UserInputError(f"pair file {p} has no pairs")
    return out


def _check_value(v: object, key: str, where: str, vocab_size: int | None) -> None:
    if isinstance(v, str):
        if key != "prompt" and not v.strip():
            raise UserInputError(f"{where}: {key} is empty")
        return
    ok = isinstance(v, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in v)
    if not ok:
        raise UserInputError(f"{where}: {key} must be a string or a list of token ids")
    if key != "prompt" and not v:
        raise UserInputError(f"{where}: {key} is empty")
    bad = [t for t in v if t < 0 or (vocab_size is not None and t >= vocab_size)]
    if bad:
        limit = f" (vocabulary of {vocab_size})" if vocab_size is not None else ""
        raise UserInputError(f"{where}: {key} has token ids out of range{limit}: {bad[:3]}")
