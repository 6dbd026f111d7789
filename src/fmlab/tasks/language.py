"""A synthetic language whose entropy rate is known exactly: a random Zipfian Markov chain.

Scaling-law studies fit ``L(N, D) = E + A/N^α + B/D^β`` and read ``E`` as "the entropy of
natural text" (Hoffmann et al. 2022, §3.3) — a number nobody can check on real text. On this
language the irreducible loss is computable, so a fitted ``E`` can be compared with the truth.

The language is a k-th order Markov chain over ``vocab_size`` tokens. Each context of ``order``
tokens (a *state*) has its own next-token distribution: the tokens in a random order (drawn per
state from the seed), with probabilities following Zipf's law ``p_r ∝ r^-s`` over ranks
``r = 1 … support`` and zero beyond. The orders are Plackett–Luce draws that favour low token
ids (``token_skew``). The stationary distribution ``π`` over states is found by power
iteration (to an L1 change below 1e-14), and the entropy rate is exactly

    h = Σ_s π(s) · H(P(· | s))        (nats per token; Cover & Thomas 2006, thm. 4.2.4)

Why this gives gradual scaling rather than one sudden drop. A model has to memorise one
distribution per state; nothing is shared between states. With uniformly random orders the
states of a random chain are visited almost equally often (each is entered from many
predecessors, which averages out); ``token_skew`` makes popular tokens rank high everywhere,
so tokens and states get unequal, heavy-tailed frequencies (vocab 16, γ = 1: the top 10 % of
states carry 28 % of the mass, the most frequent state is 18× the rarest). Then — as in the
quantization model of Michaud et al. 2023 ("The Quantization Model of Neural Scaling") —
more data reveals ever rarer contexts and more parameters store more of them, each adding a
small improvement, so loss falls gradually in both data and parameters.

With one ``zipf_exponent`` and ``support`` for all states, every state has the same
conditional entropy, so ``h`` is the entropy of the Zipf law itself; ``π`` still sets the token
and context frequencies, the unigram entropy and the optimal loss at the first positions.

Sequences start in the stationary distribution, so every position from ``order`` on has the
optimal loss ``h``; earlier positions see less context and their optimal loss is higher
(:meth:`MarkovLanguage.optimal_loss` gives the exact value per position).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from pydantic import Field, model_validator
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from fmlab.config import Config
from fmlab.errors import UserInputError

MAX_STATES = 2**20  # vocab_size ** order: the (S, V) transition table must fit in memory


class LanguageConfig(Config):
    """What language to build; the ``seed`` fixes its transition table (not the samples)."""

    vocab_size: int = Field(32, ge=2, le=65536)
    order: int = Field(2, ge=1, le=8, description="k: the next token depends on the last k")
    zipf_exponent: float = Field(1.0, ge=0.0, le=20.0, description="s in p_r ∝ r^-s")
    support: int | None = Field(
        None, ge=1, description="possible next tokens per state (None = the whole vocabulary)"
    )
    token_skew: float = Field(
        1.0,
        ge=0.0,
        le=20.0,
        description="γ: states rank popular tokens first (Plackett–Luce weights ∝ id^-γ); 0 = none",
    )
    seed: int = Field(0, description="seed of the transition table")

    @model_validator(mode="after")
    def _check(self) -> LanguageConfig:
        if self.support is not None and self.support > self.vocab_size:
            raise ValueError(f"support={self.support} exceeds vocab_size={self.vocab_size}")
        if self.vocab_size**self.order > MAX_STATES:
            raise ValueError(
                f"vocab_size**order = {self.vocab_size}**{self.order} states exceeds "
                f"{MAX_STATES}; use a smaller vocabulary or order"
            )
        return self

    @property
    def n_states(self) -> int:
        return self.vocab_size**self.order


def zipf_probs(n: int, exponent: float) -> np.ndarray:
    """``p_r ∝ r^-s`` for ranks ``r = 1 … n`` (float64, sums to 1)."""
    w = np.arange(1, n + 1, dtype=float) ** -exponent
    return w / w.sum()


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats along ``axis`` with ``0 log 0 = 0``."""
    p = np.asarray(p, dtype=float)
    logp = np.log(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=axis)


def transition_table(cfg: LanguageConfig) -> np.ndarray:
    """(S, V) next-token probabilities: Zipf over a random order of the tokens, per state.

    Each state's order is a Plackett–Luce draw with weights ``(v + 1)^-γ`` for token ``v``
    (sampled with the Gumbel trick): with ``γ = 0`` every order is equally likely; with
    ``γ > 0`` low token ids tend to rank high everywhere, so tokens — and the states made of
    them — get Zipf-like, heavy-tailed frequencies, as words do in natural text.
    """
    V, S = cfg.vocab_size, cfg.n_states
    m = cfg.support or V
    rng = np.random.default_rng(cfg.seed)
    log_w = -cfg.token_skew * np.log(np.arange(1, V + 1))
    keys = log_w + rng.gumbel(size=(S, V))
    ranks = np.argsort(-keys, axis=1, kind="stable")[:, :m]  # (S, m) token at rank 1 … m
    table = np.zeros((S, V))
    np.put_along_axis(table, ranks, np.broadcast_to(zipf_probs(m, cfg.zipf_exponent), (S, m)), 1)
    return table


def _state_graph(table: np.ndarray, order: int) -> sparse.csr_matrix:
    """The k-gram chain as an (S, S) sparse matrix: ``(x1..xk) → (x2..xk, y)`` w.p. P(y|s)."""
    S, V = table.shape
    rows, toks = np.nonzero(table)
    cols = (rows % (V ** (order - 1))) * V + toks
    return sparse.csr_matrix((table[rows, toks], (rows, cols)), shape=(S, S))


def closed_classes(P: sparse.csr_matrix) -> int:
    """Number of closed communicating classes of a chain (1 ⇔ a unique stationary law)."""
    _, label = connected_components(P, directed=True, connection="strong")
    src, dst = P.nonzero()
    leaving = np.unique(label[src[label[src] != label[dst]]])  # classes with an exit
    return len(np.unique(label)) - len(leaving)


def stationary_distribution(
    table: np.ndarray, order: int, tol: float = 1e-14, max_iter: int = 200_000
) -> np.ndarray:
    """The unique stationary distribution of the k-gram chain.

    States outside the chain's single closed class (unreachable or transient ones, common
    when ``support`` is small) get probability 0. Several closed classes mean no unique
    stationary law — the entropy rate would depend on the start — and raise an error.
    Power iteration on the lazy chain ``(I + P) / 2`` (same stationary law, aperiodic)
    converges for every such chain.
    """
    P = _state_graph(table, order)
    n_closed = closed_classes(P)
    if n_closed != 1:
        raise UserInputError(
            f"this language's Markov chain has {n_closed} closed classes, so its entropy rate "
            "depends on where it starts; raise support or change the seed"
        )
    PT = P.T.tocsr()
    pi = np.full(P.shape[0], 1.0 / P.shape[0])
    for _ in range(max_iter):
        nxt = 0.5 * (pi + PT @ pi)
        nxt /= nxt.sum()
        if np.abs(nxt - pi).sum() < tol:
            return nxt
        pi = nxt
    raise RuntimeError(f"stationary distribution did not converge in {max_iter} iterations")


@dataclass(frozen=True, eq=False)
class MarkovLanguage:
    """A built language: its transition table, stationary distribution and entropy rate.

    ``sample(B, T, generator)`` draws (B, T) int64 token sequences from the stationary
    process. To train a next-token model with context T, sample T + 1 tokens and predict
    ``tokens[:, 1:]`` from ``tokens[:, :-1]``.
    """

    config: LanguageConfig
    transition: np.ndarray  # (S, V) P(next token | state), float64
    stationary: np.ndarray  # (S,) π, float64
    state_entropy: np.ndarray  # (S,) H(P(· | s)) in nats
    _cdf: Tensor = field(init=False, repr=False)  # (S, V) cumulative, last column exactly 1

    def __post_init__(self) -> None:
        cdf = torch.from_numpy(np.cumsum(self.transition, axis=1))
        cdf[:, -1] = 1.0  # rounding must never leave u ∈ [0, 1) beyond the last token
        object.__setattr__(self, "_cdf", cdf)

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def order(self) -> int:
        return self.config.order

    @property
    def n_states(self) -> int:
        return self.config.n_states

    @property
    def entropy_rate(self) -> float:
        """``h = Σ_s π(s) H(P(·|s))`` in nats/token: the best achievable loss from ``order`` on."""
        return float(self.stationary @ self.state_entropy)

    @property
    def unigram_entropy(self) -> float:
        """Entropy of the stationary token frequencies: the loss of the best context-free model."""
        return float(entropy(self.marginal(1)))

    def marginal(self, length: int) -> np.ndarray:
        """Stationary joint law of ``length <= order`` consecutive tokens, shape (V,) * length."""
        if not 1 <= length <= self.order:
            raise ValueError(f"length must be in [1, {self.order}], got {length}")
        joint = self.stationary.reshape((self.vocab_size,) * self.order)
        return joint.sum(axis=tuple(range(length, self.order))) if length < self.order else joint

    def optimal_loss(self, seq_len: int) -> np.ndarray:
        """(seq_len,) exact ``H(x_t | x_0 … x_{t-1})`` in nats for t = 0 … seq_len - 1.

        ``t = 0`` is the unigram entropy; ``1 <= t < order`` sees a partial context,
        ``H(x_0..x_t) - H(x_0..x_{t-1})`` of the stationary marginals; from ``t = order`` on
        it is the entropy rate. For a model fed ``tokens[:, :-1]`` and scored on
        ``tokens[:, 1:]`` the optimum per target is ``optimal_loss(T + 1)[1:]``.
        """
        joint_h = [0.0] + [
            float(entropy(self.marginal(j).ravel())) for j in range(1, self.order + 1)
        ]
        out = np.full(seq_len, self.entropy_rate)
        for t in range(min(seq_len, self.order)):
            out[t] = joint_h[t + 1] - joint_h[t]
        return out

    def states(self, tokens: Tensor) -> Tensor:
        """(B, T) → (B, T - order + 1): the state (last ``order`` tokens) ending at each t."""
        V, k = self.vocab_size, self.order
        state = torch.zeros_like(tokens[:, k - 1 :])
        for i in range(k):
            state = state * V + tokens[:, i : tokens.shape[1] - k + 1 + i]
        return state

    def next_token_probs(self, tokens: Tensor) -> Tensor:
        """(B, T) tokens → (B, T, V) float64: the true P(x_{t+1} | x_0 … x_t) at every t.

        Positions with a full context use the transition table; the first ``order - 1`` use
        the stationary marginals. Scoring a model against these (expected cross-entropy)
        removes the noise of sampling the target token.
        """
        B, T = tokens.shape
        V, k = self.vocab_size, self.order
        out = torch.empty(B, T, V, dtype=torch.float64)
        if k <= T:
            out[:, k - 1 :] = torch.from_numpy(self.transition)[self.states(tokens)]
        for t in range(min(T, k - 1)):
            joint = torch.from_numpy(self.marginal(t + 2).reshape(-1, V))  # (V^(t+1), V)
            prefix = torch.zeros(B, dtype=torch.long)
            for i in range(t + 1):
                prefix = prefix * V + tokens[:, i]
            rows = joint[prefix]
            out[:, t] = rows / rows.sum(-1, keepdim=True)
        return out

    def sample(self, batch_size: int, seq_len: int, generator: torch.Generator) -> Tensor:
        """(B, T) int64 tokens of the stationary process, from ``generator`` alone."""
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
        V, k = self.vocab_size, self.order
        cdf = self._cdf
        state = torch.multinomial(
            torch.from_numpy(self.stationary), batch_size, replacement=True, generator=generator
        )  # (B,)
        out = torch.empty(batch_size, max(seq_len, k), dtype=torch.long)
        for i in range(k):  # decode the first k tokens from the state, most significant first
            out[:, i] = (state // V ** (k - 1 - i)) % V
        u = torch.rand(max(seq_len - k, 0), batch_size, 1, dtype=torch.float64, generator=generator)
        keep = V ** (k - 1)
        for t in range(k, seq_len):
            nxt = torch.searchsorted(cdf[state], u[t - k], right=True)[:, 0]
            nxt = nxt.clamp_(max=V - 1)
            out[:, t] = nxt
            state = (state % keep) * V + nxt
        return out[:, :seq_len]


def make_language(cfg: LanguageConfig | None = None) -> MarkovLanguage:
    """Build the language of ``cfg``: transition table, stationary distribution, entropies."""
    cfg = cfg or LanguageConfig()
    table = transition_table(cfg)
    pi = stationary_distribution(table, cfg.order)
    return MarkovLanguage(cfg, table, pi, entropy(table))
