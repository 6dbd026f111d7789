"""One seed of ``intrinsic-dim``: pretrain once, keeping the model at several steps;
for each kept model, full fine-tuning (the reference) and a search over d for the
smallest subspace reaching ``threshold`` × its accuracy."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmlab.device import place
from fmlab.models import GPT
from fmlab.models.layers import Linear
from fmlab.store import RunLog
from fmlab.studies.adaptation.task import Tasks, lm_loss, make_tasks
from fmlab.studies.intrinsic_dim.subspace import Subspace, projection
from fmlab.train import train


class Classifier(nn.Module):
    """A GPT's final residual → a linear head, at positions 1 … T-1."""

    def __init__(self, gpt: GPT, n_labels: int, generator: torch.Generator):
        super().__init__()
        self.gpt = gpt
        self.head = Linear(gpt.cfg.d_model, n_labels, generator)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.gpt(tokens, output="final"))[:, 1:]  # (B, T-1, K)


def labels(tasks: Tasks, tokens: Tensor) -> Tensor:
    """The rule's most likely class at each context: a deterministic label (B, T-1)."""
    return tasks.label_dist(tokens).argmax(-1)


def cls_loss(model, tokens: Tensor, tasks: Tasks) -> Tensor:
    logits = model(tokens)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels(tasks, tokens).reshape(-1))


@torch.no_grad()
def accuracy(model, tokens: Tensor, tasks: Tasks) -> float:
    return (model(tokens).argmax(-1) == labels(tasks, tokens)).double().mean().item()


def stream(lang, size: int, gen: torch.Generator):
    while True:
        yield lang.sample(size, gen)


class Seed:
    def __init__(self, cfg: Any, seed: int, log: RunLog):
        self.cfg, self.seed, self.log = cfg, seed, log
        self.tasks = make_tasks(cfg.language, cfg.language.n_classes // 2, seed)
        g = torch.Generator().manual_seed(10_000 + seed)
        self.val, self.test, self.source = place(
            tuple(self.tasks.source.sample(cfg.n_eval, g) for _ in range(3))
        )

    def pretrain(self) -> dict[int, dict[str, Tensor]]:
        """The model's weights at each step of ``cfg.checkpoints`` (0: the random init)."""
        cfg, src = self.cfg, self.tasks.source
        gen = torch.Generator().manual_seed(self.seed)
        model = place(GPT(cfg.model, vocab_size=src.vocab_size, seq_len=src.seq_len,
                          generator=gen))  # fmt: skip
        kept: dict[int, dict[str, Tensor]] = {}
        state = lambda: {str(k): v for k, v in kept.items()}  # noqa: E731
        restore = lambda saved: kept.update({int(k): v for k, v in saved.items()})  # noqa: E731
        label = f"pretrain s{self.seed}"
        ck = self.log.checkpoint(label, state=state, restore=restore)
        steps = train(model, lm_loss, stream(src, cfg.pretrain.batch_size or 32, gen),
                      cfg.pretrain, checkpoint=ck)  # fmt: skip
        for step, metrics in self.log.track(steps, cfg.pretrain.steps, label):
            with torch.no_grad():
                metrics["source_loss"] = lm_loss(model, self.source).item()
            self.log.log(step, metrics, seed=self.seed, phase="pretrain")
            if step in cfg.checkpoints:
                kept[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return kept

    def classifier(self, weights: dict[str, Tensor]) -> Classifier:
        cfg, src = self.cfg, self.tasks.source
        with torch.random.fork_rng(devices=[]):
            gpt = GPT(cfg.model, vocab_size=src.vocab_size, seq_len=src.seq_len,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip
        gpt.load_state_dict(weights)
        head_gen = torch.Generator().manual_seed(30_000 + self.seed)  # the same head for all
        return place(Classifier(gpt, self.tasks.n_classes, head_gen))

    def fit(self, model, key: str, lr: float, tags: dict) -> float:
        """Train on the stream (the same batches for every arm); test accuracy."""
        tc = self.cfg.finetune.model_copy(update={"lr": lr})
        gen = torch.Generator().manual_seed(20_000 + self.seed)
        loss = lambda m, b: cls_loss(m, b, self.tasks)  # noqa: E731
        loop = train(model, loss, stream(self.tasks.source, tc.batch_size or 32, gen), tc,
                     checkpoint=self.log.checkpoint(key))  # fmt: skip
        for step, metrics in self.log.track(loop, tc.steps, key):
            metrics["val_acc"] = accuracy(model, self.val, self.tasks)
            self.log.log(step, metrics, seed=self.seed, **tags)
        return accuracy(model, self.test, self.tasks)

    def subspace_acc(self, weights, step: int, d: int) -> float:
        cfg = self.cfg
        model = self.classifier(weights)
        D = sum(p.numel() for p in model.parameters())
        gen = torch.Generator().manual_seed(40_000 + self.seed)  # P: the same for every d
        proj = place(projection(cfg.projection, D, d, gen, cfg.dense_max))
        sub = Subspace(model, d, proj)
        key = f"subspace pre{step} d{d} s{self.seed}"
        acc = self.fit(sub, key, cfg.subspace_lr, {"phase": "subspace", "pretrain_step": step,
                                                   "d": d})  # fmt: skip
        self.log.log(d, {"acc": acc}, seed=self.seed, phase="search", pretrain_step=step)
        return acc

    def d90(self, weights, step: int) -> dict[str, Any]:
        """Full-FT accuracy, then d = d_start, ×factor, … until ``threshold`` × it is
        reached; one bisection (geometric) between the last miss and the first hit."""
        cfg = self.cfg
        model = self.classifier(weights)
        D = sum(p.numel() for p in model.parameters())
        best = None  # full fine-tuning at its best learning rate (by validation accuracy)
        for lr in cfg.finetune_lrs:
            model = self.classifier(weights)
            test = self.fit(model, f"full pre{step} lr{lr:g} s{self.seed}", lr,
                            {"phase": "full", "pretrain_step": step})  # fmt: skip
            val = accuracy(model, self.val, self.tasks)
            if best is None or val > best[0]:
                best = (val, test, lr)
        _, ft, ft_lr = best
        target = cfg.threshold * ft
        tried: dict[int, float] = {}
        d, miss, hit = cfg.d_start, None, None
        while d <= D:
            tried[d] = self.subspace_acc(weights, step, d)
            if tried[d] >= target:
                hit = d
                break
            miss, d = d, d * cfg.d_factor
        if hit is not None and miss is not None and cfg.d_factor > 2:
            mid = round(math.sqrt(miss * hit))
            if miss < mid < hit:
                tried[mid] = self.subspace_acc(weights, step, mid)
                if tried[mid] >= target:
                    hit = mid
        return {"full_acc": ft, "full_lr": ft_lr, "d90": hit, "n_params": D, "tried": tried}


def run_seed(cfg, seed: int, log: RunLog) -> dict[str, Any]:
    s = Seed(cfg, seed, log)
    kept = s.pretrain()
    out: dict[str, Any] = {}
    for step in sorted(kept):
        r = s.d90(copy.deepcopy(kept[step]), step)
        out[step] = r
    return out
