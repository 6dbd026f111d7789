"""Language models as the ``unlearning`` study sees them: token ids in, logits out, for
fmlab's GPT on the word-level corpus and for a user's Hugging Face causal LM alike.

A question/answer pair becomes ``prompt + answer`` (right-padded); only answer tokens
are scored and trained on (TOFU fine-tunes on the answer given the question).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmlab.studies.unlearning.facts import EOS, PAD, A, Q


class WordCodec:
    """The corpus's word-level tokens: ``question: <words> answer:`` then the answer's
    words and ``<eos>``."""

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.pad, self.eos = self.ids[PAD], self.ids[EOS]

    def _ids(self, text: str) -> list[int]:
        return [self.ids[w] for w in text.split()]

    def prompt(self, question: str) -> list[int]:
        return [self.ids[Q], *self._ids(question), self.ids[A]]

    def answer(self, answer: str) -> list[int]:
        return [*self._ids(answer), self.eos]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i] for i in ids if i not in (self.pad, self.eos))


class HFCodec:
    """A Hugging Face tokenizer: ``Question: …\\nAnswer:`` then `` answer`` and EOS."""

    def __init__(self, tokenizer: Any):
        self.tok = tokenizer
        self.eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos

    def _ids(self, text: str, **kw: Any) -> list[int]:
        ids = self.tok(text, **kw)["input_ids"]
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return [int(i) for i in (ids[0] if ids and isinstance(ids[0], list) else ids)]

    def prompt(self, question: str) -> list[int]:
        return self._ids(f"Question: {question}\nAnswer:")

    def answer(self, answer: str) -> list[int]:
        return [*self._ids(" " + answer.strip(), add_special_tokens=False), self.eos]

    def decode(self, ids: Sequence[int]) -> str:
        ids = [i for i in ids if i not in (self.eos, self.pad)]
        try:
            return self.tok.decode(ids, skip_special_tokens=True)
        except TypeError:  # tokenizers without the option (fmlab's tiny byte tokenizer)
            return self.tok.decode(ids)


@dataclass
class LM:
    """A model with its codec; ``call(ids, attn)`` gives logits (B, T, V)."""

    model: nn.Module
    codec: Any
    call: Callable[[nn.Module, Tensor, Tensor], Tensor]
    max_len: int


def gpt_call(model: nn.Module, ids: Tensor, attn: Tensor) -> Tensor:
    return model(ids)  # causal, right padding: pads never influence earlier positions


def hf_call(model: nn.Module, ids: Tensor, attn: Tensor) -> Tensor:
    return model(input_ids=ids, attention_mask=attn).logits


@dataclass
class Batch:
    ids: Tensor  # (B, T) prompt + answer, right-padded
    attn: Tensor  # (B, T) 1 on real tokens
    target: Tensor  # (B, T) True on answer tokens (the ones scored)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: Any) -> Batch:
        return Batch(self.ids.to(device), self.attn.to(device), self.target.to(device))

    def take(self, idx: Tensor) -> Batch:
        return Batch(self.ids[idx], self.attn[idx], self.target[idx])


def encode(codec: Any, pairs: Sequence[tuple[str, str]], max_len: int | None = None) -> Batch:
    """(question, answer) pairs as one right-padded batch (cut to ``max_len`` tokens)."""
    rows = []
    for q, a in pairs:
        p, ans = codec.prompt(q), codec.answer(a)
        seq = (p + ans)[:max_len] if max_len else p + ans
        rows.append((seq, len(p)))
    T = max(len(s) for s, _ in rows)
    ids = torch.full((len(rows), T), codec.pad, dtype=torch.long)
    attn = torch.zeros(len(rows), T, dtype=torch.long)
    target = torch.zeros(len(rows), T, dtype=torch.bool)
    for i, (s, n) in enumerate(rows):
        ids[i, : len(s)] = torch.tensor(s)
        attn[i, : len(s)] = 1
        target[i, n : len(s)] = True
    return Batch(ids, attn, target)


def token_logprobs(lm: LM, batch: Batch) -> tuple[Tensor, Tensor]:
    """Log-probabilities of each next token and the mask of answer tokens, (B, T-1)."""
    dev = next(lm.model.parameters()).device
    b = batch.to(dev)
    logits = lm.call(lm.model, b.ids[:, :-1], b.attn[:, :-1]).float()
    logp = torch.gather(F.log_softmax(logits, -1), 2, b.ids[:, 1:, None])[..., 0]
    return logp, b.target[:, 1:]


def sequence_nll(lm: LM, batch: Batch) -> tuple[Tensor, Tensor]:
    """Summed answer NLL and answer length per row (differentiable)."""
    logp, mask = token_logprobs(lm, batch)
    return -(logp * mask).sum(1), mask.sum(1)


@torch.no_grad()
def answer_logprobs(lm: LM, codec_pairs: Sequence[tuple[str, str]], chunk: int = 256):
    """Per pair: the answer tokens' log-probabilities (a list of 1-D tensors, on CPU)."""
    out: list[Tensor] = []
    for s in range(0, len(codec_pairs), chunk):
        logp, mask = token_logprobs(lm, encode(lm.codec, codec_pairs[s : s + chunk], lm.max_len))
        logp, mask = logp.cpu(), mask.cpu()
        out += [logp[i][mask[i]] for i in range(len(logp))]
    return out


@torch.no_grad()
def greedy_answers(lm: LM, questions: Sequence[str], max_new: int) -> list[str]:
    """Greedy decoding of each question's answer (stopping at EOS), all prompts at once:
    right-padded, each row reading the logits at its own last token (causal attention,
    so the pads after it never reach it)."""
    dev = next(lm.model.parameters()).device
    prompts = [lm.codec.prompt(q) for q in questions]
    if not prompts:
        return []
    lens = torch.tensor([len(p) for p in prompts], device=dev)
    T = min(lm.max_len, int(lens.max()) + max_new)
    ids = torch.full((len(prompts), T), lm.codec.pad, dtype=torch.long, device=dev)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(p[:T])
    rows = torch.arange(len(prompts), device=dev)
    done = lens >= T
    for _ in range(max_new):
        if bool(done.all()):
            break
        t = int(lens.max())
        attn = (torch.arange(t, device=dev)[None] < lens[:, None]).long()
        logits = lm.call(lm.model, ids[:, :t], attn)
        nxt = logits[rows, (lens - 1).clamp_max(t - 1)].argmax(-1)
        write = ~done
        ids[rows[write], lens[write]] = nxt[write]
        lens = lens + write.long()
        done = done | (nxt == lm.codec.eos) | (lens >= T)
    out = []
    for i, p in enumerate(prompts):
        row = ids[i, len(p) : int(lens[i])].tolist()
        cut = row.index(lm.codec.eos) if lm.codec.eos in row else len(row)
        out.append(lm.codec.decode(row[:cut]))
    return out
