"""Integer arithmetic mixed with a synthetic language: the data of the ``emergence`` study.

A problem ``a op b`` with ``n``-digit operands is written with fixed widths, so every
problem of a task has the same answer length ``L``: operands zero-padded to ``n`` digits,
the answer zero-padded to ``n + 1`` digits for addition and ``2n`` for multiplication
(Schaeffer et al. 2023 §3 reason about answers of ``L`` tokens). With ``reverse`` the
answer is written least significant digit first (Lee et al. 2023: the order a carry
propagates, which small transformers learn far faster than the plain order)::

    0 4 2 + 1 9 9 = 1 4 2 0 <eos>        (42 + 199 = 241, reversed, L = 4)

Tokens: digits 0-9, ``+ * = <eos> <pad>``, then the language's tokens (offset). A
training row is either one problem (task drawn uniformly, padded) or a stretch of
:mod:`fmlab.tasks.language` text (a Zipfian Markov chain), with probability
``1 - arith_frac``. Multiple-choice versions of the evaluation problems add ``K - 1``
distractors: the true answer with one digit changed (distinct), shuffled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor

from fmlab.errors import UserInputError
from fmlab.tasks.language import MarkovLanguage

DIGITS = 10
PLUS, TIMES, EQ, EOS, PAD = 10, 11, 12, 13, 14
N_SPECIAL = 15  # the language's tokens start here
OPS = {"add": PLUS, "mul": TIMES}
TASK_RE = re.compile(r"^(add|mul)([1-9])$")


@dataclass(frozen=True)
class Task:
    """``add3``: 3-digit addition; ``mul2``: 2-digit multiplication."""

    op: str
    digits: int

    @classmethod
    def parse(cls, name: str) -> Task:
        m = TASK_RE.match(name)
        if m is None:
            raise UserInputError(
                f"task {name!r} is not add<n> or mul<n> with n in 1..9 (e.g. add3, mul2)"
            )
        return cls(m.group(1), int(m.group(2)))

    @property
    def name(self) -> str:
        return f"{self.op}{self.digits}"

    @property
    def answer_len(self) -> int:
        """L: answer digits (without <eos>)."""
        return self.digits + 1 if self.op == "add" else 2 * self.digits

    @property
    def prompt_len(self) -> int:
        return 2 * self.digits + 2  # a op b =

    @property
    def row_len(self) -> int:
        return self.prompt_len + self.answer_len + 1  # + <eos>


def _digits(x: Tensor, width: int, reverse: bool) -> Tensor:
    """(n,) non-negative ints → (n, width) digit tokens, most significant first (or
    least significant first with ``reverse``)."""
    powers = 10 ** torch.arange(width - 1, -1, -1)
    d = (x[:, None] // powers) % 10
    return d.flip(1) if reverse else d


@dataclass(frozen=True)
class Problems:
    """``n`` problems of one task: prompt tokens (n, P), answer tokens (n, L)."""

    task: Task
    a: Tensor
    b: Tensor
    prompt: Tensor
    answer: Tensor


def make_problems(task: Task, n: int, gen: torch.Generator, reverse: bool) -> Problems:
    hi = 10**task.digits
    a = torch.randint(hi, (n,), generator=gen)
    b = torch.randint(hi, (n,), generator=gen)
    c = a + b if task.op == "add" else a * b
    op = torch.full((n, 1), OPS[task.op])
    eq = torch.full((n, 1), EQ)
    prompt = torch.cat([_digits(a, task.digits, False), op, _digits(b, task.digits, False), eq], 1)
    return Problems(task, a, b, prompt, _digits(c, task.answer_len, reverse))


def answer_value(answer: Tensor, reverse: bool) -> Tensor:
    """(n, L) digit tokens → (n,) integers (inverse of the answer encoding)."""
    d = answer.flip(1) if reverse else answer
    powers = 10 ** torch.arange(d.shape[1] - 1, -1, -1)
    return (d * powers).sum(1)


def distractors(answer: Tensor, k: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Multiple choice: (n, k, L) options (the true answer and ``k - 1`` others, each the
    true answer with one digit changed, all distinct) and (n,) the true option's index."""
    n, L = answer.shape
    if k - 1 > 9 * L:
        raise UserInputError(f"{k} choices need more one-digit changes than L={L} allows")
    # every one-digit change, as (position, new digit) pairs: 9 L of them per problem
    pos = torch.arange(L).repeat_interleave(9)  # (9L,)
    shift = torch.arange(1, 10).repeat(L)  # (9L,)
    pick = torch.rand(n, 9 * L, generator=gen).argsort(1)[:, : k - 1]  # (n, k-1) distinct
    wrong = answer[:, None, :].repeat(1, k - 1, 1)  # (n, k-1, L)
    p, s = pos[pick], shift[pick]
    rows = torch.arange(n)[:, None].expand(-1, k - 1)
    cols = torch.arange(k - 1)[None].expand(n, -1)
    wrong[rows, cols, p] = (wrong[rows, cols, p] + s) % 10
    options = torch.cat([answer[:, None], wrong], 1)  # (n, k, L), true first
    order = torch.rand(n, k, generator=gen).argsort(1)
    options = options.gather(1, order[..., None].expand(-1, -1, L))
    label = (order == 0).float().argmax(1)
    return options, label


class Mixture:
    """Training rows of length ``seq_len + 1``: problems of ``tasks`` (uniformly) and
    language text, ``arith_frac`` of the rows arithmetic; pads never enter the loss."""

    def __init__(
        self,
        tasks: list[Task],
        lang: MarkovLanguage,
        seq_len: int,
        arith_frac: float,
        reverse: bool,
    ):
        need = max(t.row_len for t in tasks)
        if seq_len + 1 < need:
            raise UserInputError(
                f"seq_len={seq_len} is too short for {max(tasks, key=lambda t: t.row_len).name} "
                f"(a problem takes {need} tokens: seq_len >= {need - 1})"
            )
        self.tasks, self.lang, self.seq_len = tasks, lang, seq_len
        self.arith_frac, self.reverse = arith_frac, reverse

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + self.lang.vocab_size

    def sample(self, batch: int, gen: torch.Generator) -> Tensor:
        """(batch, seq_len + 1) token ids."""
        T = self.seq_len + 1
        rows = torch.full((batch, T), PAD)
        is_arith = torch.rand(batch, generator=gen) < self.arith_frac
        which = torch.randint(len(self.tasks), (batch,), generator=gen)
        for i, task in enumerate(self.tasks):
            idx = torch.nonzero(is_arith & (which == i)).flatten()
            if len(idx):
                p = make_problems(task, len(idx), gen, self.reverse)
                eos = torch.full((len(idx), 1), EOS)
                rows[idx, : task.row_len] = torch.cat([p.prompt, p.answer, eos], 1)
        idx = torch.nonzero(~is_arith).flatten()
        text = self.lang.sample(batch, T, gen) + N_SPECIAL  # drawn for every row: fixed use
        rows[idx] = text[idx]
        return rows


def batches(mix: Mixture, batch: int, seeds: list[int]):
    """Endless stacked (K, batch, seq_len + 1) rows, member k from its own generator."""
    gens = [torch.Generator().manual_seed(1_000_003 * s + 17) for s in seeds]
    while True:
        yield torch.stack([mix.sample(batch, g) for g in gens])
