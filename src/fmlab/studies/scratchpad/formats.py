"""Arithmetic problems and the three ways of writing their answers (Lee et al. 2023, §3–4).

A problem is ``(a, b)`` with an operation: ``add`` (``a + b``) or ``mul`` (``a × b`` with
``b`` one digit — the harder operation, whose carries run up to 8). Its text is the
prompt ``a+b=`` (``a*b=``) followed by the *output* in one of three formats:

* ``plain``: the result most-significant digit first, ``12+39=51#`` — the first digit
  written depends on every carry below it;
* ``reversed``: the result least-significant digit first, ``12+39=15#`` — each digit
  depends only on the operands' digits at its place and one carry (Lee et al.'s
  "reverse");
* ``scratchpad``: one step per place, least significant first, each the four digits
  ``a_i b_i c_i s_i`` (operand digits, carry in, digit written), then the final carry,
  ``|`` and the result, ``12+39=2901` `1130` `1` `|51#`` without the spaces (a compact
  form of Lee et al.'s "detailed scratchpad"; Nye et al. 2021's intermediate steps).
  For ``mul`` a step is ``a_i b c_i s_i`` with ``a_i·b + c_i = 10·c_{i+1} + s_i``.

``#`` ends every output. Every text is characters of :data:`VOCAB`, one token each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fmlab.errors import UserInputError

VOCAB = "0123456789+*=|#"
TOKEN = {c: i for i, c in enumerate(VOCAB)}
EOS = TOKEN["#"]
FORMATS = ("plain", "reversed", "scratchpad")
OPS = {"add": "+", "mul": "*"}


@dataclass(frozen=True)
class Problem:
    a: int
    b: int
    op: str  # "add" or "mul"

    @property
    def result(self) -> int:
        return self.a + self.b if self.op == "add" else self.a * self.b

    @property
    def prompt(self) -> str:
        return f"{self.a}{OPS[self.op]}{self.b}="

    @property
    def pattern(self) -> tuple[int, int]:
        """The operands' digit counts."""
        return len(str(self.a)), len(str(self.b))


def scratch_steps(p: Problem) -> str:
    """The step-by-step part of a scratchpad output, before ``|``."""
    da = str(p.a)[::-1]
    if p.op == "add":
        db = str(p.b)[::-1]
        places = max(len(da), len(db))
        digits = [(int(da[i]) if i < len(da) else 0, int(db[i]) if i < len(db) else 0)
                  for i in range(places)]  # fmt: skip
    else:
        digits = [(int(d), p.b) for d in da]
    carry, out = 0, []
    for x, y in digits:
        total = (x + y if p.op == "add" else x * y) + carry
        out.append(f"{x}{y}{carry}{total % 10}")
        carry = total // 10
    return "".join(out) + str(carry)


def output(p: Problem, fmt: str) -> str:
    """What the model writes after the prompt, ``#`` included."""
    r = str(p.result)
    if fmt == "plain":
        return r + "#"
    if fmt == "reversed":
        return r[::-1] + "#"
    if fmt == "scratchpad":
        return scratch_steps(p) + "|" + r + "#"
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def answer_of(generated: str, fmt: str) -> str | None:
    """The result a generated output states (None if it states none): the text before
    the first ``#``, un-reversed for ``reversed``, after ``|`` for ``scratchpad``."""
    if "#" not in generated:
        return None
    text = generated.split("#", 1)[0]
    if fmt == "reversed":
        text = text[::-1]
    elif fmt == "scratchpad":
        if "|" not in text:
            return None
        text = text.split("|", 1)[1]
    return text if text.isdigit() else None


def encode(text: str) -> list[int]:
    return [TOKEN[c] for c in text]


def decode(ids: Sequence[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


def _numbers(digits: int) -> tuple[int, int]:
    """The range of numbers with this many digits (0 counts as one digit)."""
    return (0 if digits == 1 else 10 ** (digits - 1)), 10**digits


def patterns(op: str, max_digits: int) -> list[tuple[int, int]]:
    """Digit-count patterns trained on: every (d_a, d_b) up to ``max_digits`` for
    ``add``; (d_a, 1) for ``mul`` (the multiplier has one digit)."""
    if op == "add":
        return [(i, j) for i in range(1, max_digits + 1) for j in range(1, max_digits + 1)]
    return [(i, 1) for i in range(1, max_digits + 1)]


def sample_pattern(op: str, pattern: tuple[int, int], n: int, rng: np.random.Generator,
                   exclude: set[tuple[int, int]] = frozenset()) -> list[Problem]:  # fmt: skip
    """``n`` distinct problems of one pattern, none in ``exclude`` (fewer if the pattern
    has fewer)."""
    (lo_a, hi_a), (lo_b, hi_b) = _numbers(pattern[0]), _numbers(pattern[1])
    size = (hi_a - lo_a) * (hi_b - lo_b)
    out: list[Problem] = []
    seen = set(exclude)
    if size <= 4 * (n + len(exclude)):  # small pattern: enumerate and shuffle
        pairs = [(a, b) for a in range(lo_a, hi_a) for b in range(lo_b, hi_b)]
        for i in rng.permutation(len(pairs)):
            if pairs[i] not in seen:
                out.append(Problem(*pairs[i], op))
                if len(out) == n:
                    break
        return out
    while len(out) < n:
        a, b = int(rng.integers(lo_a, hi_a)), int(rng.integers(lo_b, hi_b))
        if (a, b) not in seen:
            seen.add((a, b))
            out.append(Problem(a, b, op))
    return out


@dataclass
class Tests:
    """Held-out problems shared by every seed: ``test`` of the hardest trained pattern
    and ``longer``, one digit more than trained."""

    test: list[Problem]
    longer: list[Problem]


def make_tests(op: str, max_digits: int, n_test: int) -> Tests:
    rng = np.random.default_rng([7919, max_digits, len(op)])
    test = sample_pattern(op, patterns(op, max_digits)[-1], n_test, rng)
    longer_pat = (max_digits + 1, max_digits + 1 if op == "add" else 1)
    return Tests(test, sample_pattern(op, longer_pat, n_test, rng))


def make_train(op: str, max_digits: int, n_train: int, seed: int, tests: Tests) -> list[Problem]:
    """A seed's training problems in order (a dataset of size N is the first N: nested,
    like a learning curve), drawn pattern-balanced (each pattern equally often, as Lee
    et al.'s balanced sampling; a pattern with too few problems gives all it has and the
    others fill in), without repeats and disjoint from the test problems."""
    rng = np.random.default_rng([seed, 104_729])
    taken = {(p.a, p.b) for p in tests.test}
    pools = [sample_pattern(op, pat, n_train, rng, taken) for pat in patterns(op, max_digits)]
    order: list[Problem] = []
    cursor = [0] * len(pools)
    while len(order) < n_train:
        live = [i for i, pool in enumerate(pools) if cursor[i] < len(pool)]
        if not live:
            raise UserInputError(
                f"only {len(order)} distinct {op} problems of up to {max_digits} digits "
                f"besides the test set; lower the largest dataset size ({n_train})"
            )
        for i in rng.permutation(live):
            if len(order) < n_train and cursor[i] < len(pools[i]):
                order.append(pools[i][cursor[i]])
                cursor[i] += 1
    return order
