"""Where the ``watermark`` study's text comes from: a GPT trained on a language whose
next-token probabilities are known exactly, or any causal LM (``source=tiny-gpt2``, a
model directory, a cached hub id).

The language is :mod:`fmlab.tasks.language`'s Zipfian Markov chain with one change: each
state draws its Zipf exponent from ``zipf_exponents`` (seeded), so next-token entropies
range from near-uniform to near-deterministic inside one language — what the entropy
bins of Kirchenbauer et al.'s Theorem 4.2 need. With a single exponent it is exactly
the ``scaling`` study's language family (every state the same entropy).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fmlab.device import place
from fmlab.models import GPT
from fmlab.store import Run
from fmlab.tasks.language import (
    LanguageConfig,
    MarkovLanguage,
    entropy,
    stationary_distribution,
    transition_table,
)
from fmlab.train import train
from fmlab.watermark.generate import NextLogprobs, gpt_next, hf_next


def mixed_language(cfg: LanguageConfig, exponents: list[float]) -> MarkovLanguage:
    """The language of ``cfg`` with state ``s`` following Zipf's law of exponent
    ``exponents[c_s]``, ``c_s`` drawn uniformly (seed ``cfg.seed + 1``). Every exponent
    uses the same per-state token orders (the same ``cfg.seed``)."""
    if not exponents:
        exponents = [cfg.zipf_exponent]
    tables = [transition_table(cfg.model_copy(update={"zipf_exponent": s})) for s in exponents]
    which = np.random.default_rng(cfg.seed + 1).integers(0, len(exponents), cfg.n_states)
    table = np.stack(tables)[which, np.arange(cfg.n_states)]
    pi = stationary_distribution(table, cfg.order)
    return MarkovLanguage(cfg, table, pi, entropy(table))


@dataclass
class Source:
    """A next-token model and its prompts; ``lang`` when the true distribution is known."""

    vocab_size: int
    next_logprobs: NextLogprobs
    prompts: torch.Tensor  # (n, P)
    lang: MarkovLanguage | None = None
    info: dict[str, Any] = field(default_factory=dict)
    decode: Any = None  # ids -> str, for examples (HF sources)


def _loss(model: GPT, batch: torch.Tensor) -> torch.Tensor:
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())


def train_gpt(cfg: Any, lang: MarkovLanguage, seed: int, run: Run) -> GPT:
    """A GPT trained on the language from ``seed`` (its init and its batches)."""
    gen = torch.Generator().manual_seed(seed)
    model = place(GPT(cfg.model, vocab_size=lang.vocab_size, seq_len=cfg.seq_len, generator=gen))
    batch = cfg.train.batch_size or 64
    batches = (lang.sample(batch, cfg.seq_len + 1, gen) for _ in itertools.count())
    loop = train(model, _loss, batches, cfg.train, checkpoint=run.checkpoint(f"model s{seed}"))
    for step, metrics in run.track(loop, cfg.train.steps, f"train s{seed}"):
        run.log(step, metrics, seed=seed, phase="train")
    return model.eval()


@torch.no_grad()
def model_gap(model: GPT, lang: MarkovLanguage, cfg: Any) -> dict[str, float]:
    """The trained model against the truth on a held-out set, at the generation window:
    expected cross-entropy and KL(true ‖ model) per token (nats)."""
    gen = torch.Generator().manual_seed(cfg.eval_seed)
    tokens = lang.sample(256, cfg.window + 1, gen)
    q = lang.next_token_probs(tokens[:, :-1])[:, -1]  # (n, V) at the window's last position
    nxt = gpt_next(model, cfg.window)
    logp = nxt(tokens[:, :-1]).double()
    ce = float(-(q * logp).sum(-1).mean())
    h = float(-(q * torch.log(q.clamp_min(1e-300))).sum(-1).mean())
    return {"model_ce_true": ce, "model_kl_true": ce - h, "entropy_rate": lang.entropy_rate}


def language_source(cfg: Any, seed: int, run: Run) -> Source:
    lang = mixed_language(cfg.language, cfg.zipf_exponents)
    model = train_gpt(cfg, lang, seed, run)
    run.save_weights(f"gpt_seed{seed}", model)  # `fmlab export RUN OUT --weights gpt_seed0`
    prompts = lang.sample(cfg.n_texts, cfg.prompt_len, torch.Generator().manual_seed(seed + 7))
    info = model_gap(model, lang, cfg)
    return Source(lang.vocab_size, gpt_next(model, cfg.window), prompts, lang, info)


def hf_source(cfg: Any, seed: int) -> Source:
    """A causal LM: prompts are the first ``prompt_len`` tokens of the texts of
    ``cfg.prompt_data`` (fmlab's builtin sentences, or a .txt/.jsonl file) that have that
    many, drawn with replacement from ``seed``."""
    from fmlab.data import load_texts
    from fmlab.errors import UserInputError
    from fmlab.models.hf import load

    loaded = load(
        cfg.source,
        task="causal-lm",
        seed=seed,
        allow_unsafe_pickle=cfg.allow_unsafe_pickle,
        trust_remote_code=cfg.trust_remote_code,
    )
    model, tok = place(loaded.model), loaded.tokenizer
    if tok is None:
        raise UserInputError(f"{cfg.source} has no tokenizer: prompts cannot be made")
    rows = []
    for text in load_texts(cfg.prompt_data).texts:
        ids = tok(text, return_tensors="pt")["input_ids"][0]
        if len(ids) >= cfg.prompt_len:
            rows.append(ids[: cfg.prompt_len])
    if not rows:
        raise UserInputError(
            f"no text of {cfg.prompt_data!r} has {cfg.prompt_len} tokens: lower prompt_len"
        )
    pick = torch.randint(len(rows), (cfg.n_texts,), generator=torch.Generator().manual_seed(seed))
    prompts = torch.stack(rows)[pick]
    vocab = int(model.get_output_embeddings().weight.shape[0])
    return Source(vocab, hf_next(model), prompts, None, {}, decode=tok.decode)


def make_source(cfg: Any, seed: int, run: Run) -> Source:
    if cfg.source == "language":
        return language_source(cfg, seed, run)
    return hf_source(cfg, seed)
