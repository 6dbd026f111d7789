"""A keyed pseudo-random function of (key, context tokens, token): the randomness of a
watermark.

Every scheme needs numbers that look random to anyone without the key but that the
detector can recompute from the text: KGW's green list, the Gumbel scheme's ``r_i``.
Here they come from SplitMix64 (Steele, Lea & Flood 2014, the finaliser of
``java.util.SplittableRandom``), folded over the key and the context tokens:

    s = mix(key ^ TAG);  s = mix(s ^ c) for each context token c;  u_i = mix(s + i·φ)

``u_i`` keeps the top 53 bits and is centred in its cell, so ``0 < u_i < 1`` exactly
(``-log u`` and ``-log(1 - u)`` are finite). Distinct tags separate the schemes' streams.
Everything is vectorised over numpy ``uint64`` arrays (wrap-around arithmetic), so a
detector hashes a whole batch of texts and keys at once, and the same numbers come out on
every machine.
"""

from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TOKEN_STEP = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
TAG_KGW = 0x4B4757  # "KGW"
TAG_GUMBEL = 0x47554D42  # "GUMB"
TAG_KEYS = 0x4B455953  # "KEYS": deriving keys from a seed


def mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser applied to ``x + φ`` (uint64 in, uint64 out, elementwise)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def as_keys(keys: int | np.ndarray | list[int]) -> np.ndarray:
    """Keys as a uint64 array (Python ints of any size are taken modulo 2^64)."""
    if isinstance(keys, int | np.integer):
        return np.array([int(keys) & MASK64], dtype=np.uint64)
    arr = np.asarray(keys)
    if arr.dtype == np.uint64:
        return arr.reshape(-1)
    return np.array([int(k) & MASK64 for k in arr.reshape(-1).tolist()], dtype=np.uint64)


def seeds(keys: np.ndarray, contexts: np.ndarray, tag: int) -> np.ndarray:
    """One 64-bit seed per row: the key folded with the row's context tokens.

    ``keys`` (N,) uint64 (or one key, broadcast); ``contexts`` (N, h) integer tokens.
    """
    contexts = np.asarray(contexts, dtype=np.int64)
    if contexts.ndim != 2:
        raise ValueError(f"contexts must be (N, h), got shape {contexts.shape}")
    keys = as_keys(keys)
    with np.errstate(over="ignore"):
        s = mix(np.broadcast_to(keys, (contexts.shape[0],)) ^ np.uint64(tag))
        for j in range(contexts.shape[1]):
            s = mix(s ^ contexts[:, j].astype(np.uint64))
    return s


def uniforms(seed_rows: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """``u`` in (0, 1) for each seed and token: ``seed_rows`` (N,), ``tokens`` (N, M) or
    (M,) (the same tokens for every row) → float64 (N, M)."""
    seed_rows = np.asarray(seed_rows, dtype=np.uint64)
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim == 1:
        tokens = np.broadcast_to(tokens, (seed_rows.shape[0], tokens.shape[0]))
    with np.errstate(over="ignore"):
        z = mix(seed_rows[:, None] + tokens.astype(np.uint64) * _TOKEN_STEP)
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def permute(seed_rows: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    """A keyed pseudo-random permutation of ``0 … n-1``: ``π_seed(x)`` for each row's seed
    (``seed_rows`` and ``x`` broadcast together). A 4-round Feistel network on ``2b`` bits
    (``4^b >= n``) with SplitMix64 round functions — a pseudo-random permutation by Luby &
    Rackoff (1988) — restricted to ``[0, n)`` by cycle-walking (Black & Rogaway 2002):
    values that land outside are permuted again until they fall inside, which keeps it a
    bijection. One value costs a few hashes, so ``π(x) < k`` tests membership in a keyed
    random ``k``-subset without drawing the whole permutation."""
    seed_rows, x = np.broadcast_arrays(np.asarray(seed_rows, np.uint64), np.asarray(x, np.int64))
    half = max(1, (max(n - 1, 1).bit_length() + 1) // 2)
    mask = np.uint64((1 << half) - 1)
    y = x.astype(np.uint64).copy()
    todo = np.ones(y.shape, dtype=bool)
    with np.errstate(over="ignore"):
        while todo.any():
            s, v = seed_rows[todo], y[todo]
            left, right = v >> np.uint64(half), v & mask
            for r in range(4):
                f = mix(s ^ (right * _TOKEN_STEP + np.uint64(r + 1) * _GOLDEN)) & mask
                left, right = right, left ^ f
            y[todo] = (left << np.uint64(half)) | right
            todo &= y >= np.uint64(n)
    return y.astype(np.int64)


def derive_keys(seed: int, n: int) -> np.ndarray:
    """``n`` distinct-looking 64-bit keys from one integer seed (for experiments that
    give every text its own key)."""
    with np.errstate(over="ignore"):
        base = mix(as_keys(seed) ^ np.uint64(TAG_KEYS))
        return mix(base + np.arange(n, dtype=np.uint64) * _TOKEN_STEP)
