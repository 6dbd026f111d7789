"""The data of the ``adaptation`` study: a source language to pretrain on, and two
adaptation tasks built on it.

* **Source** — the class-Markov language of the ``representations`` study: V = K·M
  tokens in K word classes, classes following an order-2 Markov chain, tokens uniform
  within their class (exact optimal loss known).
* **Transfer task** (a classification head; Kumar et al. 2022) — at every position t ≥ 1
  predict a label drawn from ``rule[z_{t-1}, z_t]``, where ``rule`` is the source chain's
  next-class distribution with the classes relabelled by a random permutation. The label
  is therefore a *linear* function of a feature pretraining built (the model's own
  next-class prediction, read off its final layer), which is Kumar et al.'s assumption
  ``y = v*ᵀ B* x`` with good pretrained features B*. **The shift**: in-distribution (ID)
  sequences use only the first ``n_id_classes`` word classes (the source chain
  restricted to them), out-of-distribution (OOD) sequences only the others. Pretraining
  saw every class, fine-tuning sees only ID ones: the contexts of OOD inputs reach the
  network through embeddings and attention patterns that fine-tuning never trained on,
  which is the subspace the theory says full fine-tuning leaves undistorted while the
  head moves.
* **Domain task** (continued LM training; Biderman et al. 2024) — next-token prediction
  in a *new domain*: sequences over the OOD classes only, following a freshly drawn
  transition table (the ``representations`` study's shifted table, restricted to them).
  Forgetting is the rise of the loss on the *old domain*, the source language on the ID
  classes. The two domains share no context, so a model could learn the new one and keep
  the old one exactly: forgetting is collateral, as for code or math vs web text in
  Biderman et al., not forced by contradicting targets. (A first version trained on the
  shifted language over all classes — same contexts, new next-class rows — where learning
  *is* forgetting; there LoRA's smaller forgetting did not clear the seeds' spread.)

Accuracy is the exact expected accuracy against labels drawn from the rule,
``mean_t rule[ctx_t][argmax logits_t]`` (no label noise in the estimate), next to the
Bayes accuracy ``mean_t max rule[ctx_t]``; the loss is the cross-entropy against the
rule's distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fmlab.studies.representations.task import ClassMarkov, ShiftConfig, make_pair


def restrict(lang: ClassMarkov, classes: Tensor, table: Tensor | None = None) -> ClassMarkov:
    """``lang`` on a subset of its classes: only their tokens, contexts and transitions
    (each row renormalised over the subset), the first two classes uniform over it — a
    language of its own, with its exact optimal loss. ``table`` (K², K) replaces the
    transition table first."""
    K = lang.members.shape[0]
    P = lang.transition if table is None else table
    ctx = (classes[:, None] * K + classes[None, :]).reshape(-1)  # base-K (a, b), a major
    sub = P[ctx][:, classes]
    return ClassMarkov(lang.members[classes], sub / sub.sum(1, keepdim=True), 2, lang.seq_len)


@dataclass(frozen=True)
class Tasks:
    source: ClassMarkov
    rule: Tensor  # (K**2, K) label distribution of each context (transfer task)
    class_of: Tensor  # (V,) token -> class
    id_classes: Tensor
    ood_classes: Tensor
    id_lang: ClassMarkov  # the source on the ID classes (transfer ID; domain's old domain)
    ood_lang: ClassMarkov  # the source on the OOD classes (transfer OOD)
    domain_lang: ClassMarkov  # a new grammar on the OOD classes (the domain task)

    @property
    def n_classes(self) -> int:
        return self.rule.shape[1]

    def label_dist(self, tokens: Tensor) -> Tensor:
        """(B, T) tokens → (B, T-1, K): the rule at positions 1 … T-1."""
        z = self.class_of.to(tokens.device)[tokens]
        return self.rule.to(tokens.device)[z[:, :-1] * self.n_classes + z[:, 1:]]


def make_tasks(cfg: ShiftConfig, n_id_classes: int, seed: int) -> Tasks:
    """The source and shifted languages of ``representations`` (same seed ⇒ same
    languages), the relabelling rule and the ID/OOD class split, all from ``seed``."""
    if cfg.order != 2:
        raise ValueError("the adaptation tasks are defined for order-2 languages")
    source, shifted = make_pair(cfg, seed)
    K, M = source.members.shape
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    perm = torch.from_numpy(rng.permutation(K))
    classes = torch.from_numpy(rng.permutation(K))
    class_of = torch.empty(K * M, dtype=torch.long)
    class_of[source.members.reshape(-1)] = torch.arange(K).repeat_interleave(M)
    id_classes, ood_classes = (
        classes[:n_id_classes].sort().values,
        classes[n_id_classes:].sort().values,
    )
    return Tasks(
        source=source,
        rule=source.transition[:, perm].contiguous(),
        class_of=class_of,
        id_classes=id_classes,
        ood_classes=ood_classes,
        id_lang=restrict(source, id_classes),
        ood_lang=restrict(source, ood_classes),
        domain_lang=restrict(source, ood_classes, shifted.transition),
    )


def classify_logits(model, tokens: Tensor) -> Tensor:
    """A token classifier's logits at positions 1 … T-1, (B, T-1, K)."""
    return model(input_ids=tokens).logits[:, 1:]


def transfer_loss(model, tokens: Tensor, tasks: Tasks) -> Tensor:
    """Cross-entropy against the rule's distribution (soft labels: the same expected
    gradient as sampled labels, less noise)."""
    logits = classify_logits(model, tokens)
    return -(tasks.label_dist(tokens) * logits.log_softmax(-1)).sum(-1).mean()


@torch.no_grad()
def transfer_metrics(model, tokens: Tensor, tasks: Tasks) -> dict[str, float]:
    """Expected accuracy against labels drawn from the rule, Bayes accuracy, loss."""
    logits = classify_logits(model, tokens).double()
    p = tasks.label_dist(tokens).double()
    acc = p.gather(-1, logits.argmax(-1, keepdim=True)).mean()
    loss = -(p * logits.log_softmax(-1)).sum(-1).mean()
    return {"acc": acc.item(), "bayes_acc": p.max(-1).values.mean().item(), "loss": loss.item()}


def lm_loss(model, tokens: Tensor) -> Tensor:
    """Next-token cross-entropy of a causal LM (transformers or fmlab) on (B, T)."""
    out = model(input_ids=tokens[:, :-1]) if hasattr(model, "config") else model(tokens[:, :-1])
    logits = out.logits if hasattr(out, "logits") else out
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


@torch.no_grad()
def body_lm_loss(body, W_U: Tensor, tokens: Tensor) -> float:
    """Source LM loss of an adapted transformer body read through the *base* model's
    unembedding ``W_U`` (V, D): how much a classifier's body forgot."""
    h = body(input_ids=tokens[:, :-1]).last_hidden_state
    logits = h @ W_U.T
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)).item()
