"""Instructions made of primitive tokens, their answers, and the splits into clusters.

A **primitive** is an operation family on a string of ``length`` digits, with its argument:
``reverse -``, ``sort -``, ``swap -`` (swap adjacent pairs), ``rotate a`` (left by
a ∈ 1..length-1), ``add a`` (a ∈ 1..3, digitwise mod 10), ``mul a`` (a ∈ {3, 7, 9},
digitwise mod 10). An instruction is one primitive or two joined by ``then``; every op
takes exactly two tokens (family, argument or ``-``), so every row of a kind has one
layout and a batch is built by tensor operations alone::

    single:       add 3 : 1 4 0 8 2 = 4 7 3 1 5 <eos>
    composition:  rotate 2 then add 3 : 1 4 0 8 2 = 0 8 2 1 4 ; 3 1 5 4 7 <eos>

A composition answers with its intermediate string first (a scratchpad), then the final
one. A **cluster** is an unordered pair of families {A, B}; a training cluster is trained
in one order (``A then B``, the orientation drawn per seed), and its other order is the
*held-out composition*; a held-out cluster is never trained in either order. Every
model, the base included, is trained on the single primitives, so every part of a
held-out instruction was seen — only the combination is new.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import torch
from torch import Tensor

FAMILIES = ("reverse", "sort", "swap", "rotate", "add", "mul")
MUL_ARGS = (3, 7, 9)  # the units mod 10 besides 1: every mul is a bijection
ADD_MAX = 3  # add 1..3: with 1..9 a 2-layer GPT had not learned add after 1000 steps
SPECIAL = ("-", "then", ":", "=", ";", "<eos>", "<pad>")
VOCAB = tuple(str(d) for d in range(10)) + FAMILIES + SPECIAL
TOK = {w: i for i, w in enumerate(VOCAB)}
PAD, EOS, NOARG = TOK["<pad>"], TOK["<eos>"], TOK["-"]


def n_args(family: int, length: int) -> int:
    """How many arguments family ``family`` takes (0: none)."""
    name = FAMILIES[family]
    return {"rotate": length - 1, "add": ADD_MAX, "mul": len(MUL_ARGS)}.get(name, 0)


def apply(family: Tensor, arg: Tensor, x: Tensor) -> Tensor:
    """Each row's primitive on its string: family (N,), arg index (N,), x (N, L) → (N, L).

    ``arg`` indexes the family's arguments (rotate by arg+1, add arg+1, mul MUL_ARGS[arg]).
    """
    L = x.shape[1]
    out = x.clone()
    pos = torch.arange(L)
    swapped = pos ^ 1  # 0↔1, 2↔3, …; an odd length keeps its last digit
    swapped = torch.where(swapped < L, swapped, pos)
    mul = torch.tensor(MUL_ARGS)
    for f, name in enumerate(FAMILIES):
        m = family == f
        if not bool(m.any()):
            continue
        xs, a = x[m], arg[m]
        if name == "reverse":
            y = xs.flip(-1)
        elif name == "sort":
            y = xs.sort(-1).values
        elif name == "swap":
            y = xs[:, swapped]
        elif name == "rotate":
            y = xs.gather(1, (pos[None, :] + a[:, None] + 1) % L)
        elif name == "add":
            y = (xs + a[:, None] + 1) % 10
        else:
            y = (xs * mul[a][:, None]) % 10
        out[m] = y
    return out


def clusters() -> list[tuple[int, int]]:
    """Every unordered pair of families, as (i, j) with i < j."""
    return list(combinations(range(len(FAMILIES)), 2))


@dataclass(frozen=True)
class Split:
    """One seed's split of the clusters: the training clusters in the order they are
    added as k grows (each as the ordered pair it is trained in), and the held-out ones."""

    train: tuple[tuple[int, int], ...]  # ordered (first, second)
    heldout: tuple[tuple[int, int], ...]  # unordered, both orders evaluated

    def trained(self, k: int) -> tuple[tuple[int, int], ...]:
        return self.train[:k]

    def reversed_order(self, k: int) -> tuple[tuple[int, int], ...]:
        """The held-out compositions of the first k clusters: their untrained order."""
        return tuple((b, a) for a, b in self.train[:k])

    def heldout_ordered(self) -> tuple[tuple[int, int], ...]:
        return tuple(p for a, b in self.heldout for p in ((a, b), (b, a)))


def make_split(n_heldout: int, seed: int) -> Split:
    """Seeded: ``n_heldout`` clusters held out, the rest in a random order, each oriented
    at random. The held-out clusters are drawn so that every family still occurs in some
    training cluster (each part of a held-out instruction is seen composed)."""
    all_ = clusters()
    if not 1 <= n_heldout <= len(all_) - 1:
        raise ValueError(f"n_heldout must lie in 1..{len(all_) - 1}")
    g = torch.Generator().manual_seed(7919 * seed + 17)
    for _ in range(1000):
        perm = torch.randperm(len(all_), generator=g).tolist()
        held = [all_[i] for i in perm[:n_heldout]]
        rest = [all_[i] for i in perm[n_heldout:]]
        if {f for p in rest for f in p} == set(range(len(FAMILIES))):
            break
    flips = torch.randint(2, (len(rest),), generator=g).tolist()
    train = tuple((b, a) if f else (a, b) for (a, b), f in zip(rest, flips, strict=True))
    return Split(train=train, heldout=tuple(held))


def _args(family: Tensor, length: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random argument indices and their tokens (``-`` for families without one)."""
    counts = torch.tensor([max(n_args(f, length), 1) for f in range(len(FAMILIES))])
    u = torch.rand(family.shape, generator=g)
    idx = (u * counts[family]).long()
    has = torch.tensor([n_args(f, length) > 0 for f in range(len(FAMILIES))])[family]
    value = idx + 1  # rotate a, add a: a = idx + 1
    is_mul = family == FAMILIES.index("mul")
    value = torch.where(is_mul, torch.tensor(MUL_ARGS)[idx.clamp(max=len(MUL_ARGS) - 1)], value)
    token = torch.where(has, value, torch.full_like(value, NOARG))  # digits are their tokens
    return idx, token


@dataclass(frozen=True)
class Rows:
    """Encoded rows: ids (N, T), the answer mask (N, T: the tokens after ``=``, ``<eos>``
    included) and the prompt length (the tokens up to and with ``=``)."""

    ids: Tensor
    target: Tensor
    prompt: int


def singles(n: int, length: int, g: torch.Generator, families: Tensor | None = None) -> Rows:
    """``n`` single-primitive rows, families uniform (or as given)."""
    fam = torch.randint(len(FAMILIES), (n,), generator=g) if families is None else families
    idx, tok = _args(fam, length, g)
    x = torch.randint(10, (n, length), generator=g)
    y = apply(fam, idx, x)
    col = lambda t: torch.full((n, 1), t)  # noqa: E731
    ids = torch.cat([fam[:, None] + 10, tok[:, None], col(TOK[":"]), x, col(TOK["="]), y,
                     col(EOS)], 1)  # fmt: skip
    return _rows(ids, prompt=length + 4)


def compositions(pairs: Tensor, n: int, length: int, g: torch.Generator) -> Rows:
    """``n`` rows of ``A then B``, the ordered pair drawn uniformly from ``pairs`` (P, 2)."""
    pick = pairs[torch.randint(len(pairs), (n,), generator=g)]
    a, b = pick[:, 0], pick[:, 1]
    ia, ta = _args(a, length, g)
    ib, tb = _args(b, length, g)
    x = torch.randint(10, (n, length), generator=g)
    mid = apply(a, ia, x)
    y = apply(b, ib, mid)
    col = lambda t: torch.full((n, 1), t)  # noqa: E731
    ids = torch.cat([a[:, None] + 10, ta[:, None], col(TOK["then"]), b[:, None] + 10,
                     tb[:, None], col(TOK[":"]), x, col(TOK["="]), mid, col(TOK[";"]), y,
                     col(EOS)], 1)  # fmt: skip
    return _rows(ids, prompt=length + 7)


def _rows(ids: Tensor, prompt: int) -> Rows:
    target = torch.zeros_like(ids, dtype=torch.bool)
    target[:, prompt:] = True
    return Rows(ids, target, prompt)


def seq_len(length: int) -> int:
    """Tokens in a composition row (the longest kind)."""
    return 3 * length + 9


def pad_to(rows: Rows, T: int) -> tuple[Tensor, Tensor]:
    extra = T - rows.ids.shape[1]
    f = torch.nn.functional.pad
    return f(rows.ids, (0, extra), value=PAD), f(rows.target, (0, extra), value=False)


def mixture(
    pairs: Tensor, n: int, length: int, single_frac: float, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One model's batch: a ``single_frac`` share of single primitives, the rest
    compositions from its trained ``pairs`` (none: all singles). (n, T) ids and mask."""
    n_single = n if len(pairs) == 0 else round(n * single_frac)
    T = seq_len(length)
    parts = [pad_to(singles(n_single, length, g), T)]
    if n - n_single:
        parts.append(pad_to(compositions(pairs, n - n_single, length, g), T))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def describe(ids: Tensor) -> str:
    return " ".join(VOCAB[int(t)] for t in ids if int(t) != PAD)
