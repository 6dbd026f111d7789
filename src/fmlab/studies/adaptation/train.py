"""One seed of the ``adaptation`` study: pretrain, export, adapt by every method and
learning rate, keep the learning rate each method does best with on its ID validation
set (Kumar et al. 2022 and Biderman et al. 2024 both select so), and measure.

Every arm of a seed sees the same batches (its own generator, seeded from the seed);
every training loop has its checkpoint; the loop bodies only log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from fmlab.device import place
from fmlab.models import GPT
from fmlab.models.hf.export import to_hf
from fmlab.store import RunLog
from fmlab.studies.adaptation import measure as M
from fmlab.studies.adaptation.methods import (
    body,
    causal_lm,
    n_trainable,
    set_trainable,
    token_classifier,
    with_lora,
)
from fmlab.studies.adaptation.task import (
    Tasks,
    body_lm_loss,
    lm_loss,
    make_tasks,
    transfer_loss,
    transfer_metrics,
)
from fmlab.train import TrainConfig, train


def key_of(method: str) -> str:
    return method.replace("-", "_")


def stream(lang, size: int, gen: torch.Generator):
    while True:  # fresh sequences every step
        yield lang.sample(size, gen)


@dataclass
class Evals:
    """Held-out token sets of one seed (the same for every arm)."""

    id_val: torch.Tensor
    id_test: torch.Tensor
    ood_test: torch.Tensor
    source: torch.Tensor
    domain_val: torch.Tensor
    domain_test: torch.Tensor
    old_domain: torch.Tensor

    @classmethod
    def make(cls, tasks: Tasks, n: int, seed: int) -> Evals:
        g = torch.Generator().manual_seed(10_000 + seed)
        langs = (tasks.id_lang, tasks.id_lang, tasks.ood_lang, tasks.source,
                 tasks.domain_lang, tasks.domain_lang, tasks.id_lang)  # fmt: skip
        return cls(*place(tuple(lang.sample(n, g) for lang in langs)))


@dataclass
class Seed:
    cfg: Any  # AdaptationConfig
    seed: int
    log: RunLog
    tasks: Tasks = field(init=False)
    evals: Evals = field(init=False)
    timings: list[dict[str, Any]] = field(default_factory=list)
    base_loss: float = float("nan")  # the pretrained model's source loss
    base_old_loss: float = float("nan")  # … and its loss on the domain task's old domain

    def __post_init__(self) -> None:
        self.tasks = make_tasks(self.cfg.language, self.cfg.n_id_classes, self.seed)
        self.evals = Evals.make(self.tasks, self.cfg.n_eval, self.seed)

    def fit(self, model, loss_fn, lang, lr: float, key: str, tags: dict, val) -> float:
        """Train on ``lang``'s stream at ``lr``; log the training loss and ``val(model)``;
        return the wall time (kept out of the metrics: it is not reproducible)."""
        tc: TrainConfig = self.cfg.finetune.model_copy(update={"lr": lr})
        gen = torch.Generator().manual_seed(20_000 + self.seed)  # the same for every arm
        data = stream(lang, tc.batch_size or 32, gen)
        start = time.perf_counter()
        loop = train(model, loss_fn, data, tc, checkpoint=self.log.checkpoint(key))
        for step, metrics in self.log.track(loop, tc.steps, key):
            metrics["val_loss"] = val(model)
            self.log.log(step, metrics, seed=self.seed, lr=lr, **tags)
        seconds = time.perf_counter() - start
        self.timings.append({"seed": self.seed, "lr": lr, **tags, "seconds": seconds,
                             "steps": tc.steps, "trainable": n_trainable(model)})  # fmt: skip
        return seconds

    # ------------------------------------------------------------------ pretraining
    def pretrain(self) -> GPT:
        cfg, src = self.cfg, self.tasks.source
        gen = torch.Generator().manual_seed(self.seed)
        model = place(GPT(cfg.model, vocab_size=src.vocab_size, seq_len=src.seq_len,
                          generator=gen))  # fmt: skip
        data = stream(src, cfg.pretrain.batch_size or 32, gen)
        label = f"pretrain s{self.seed}"
        steps = train(model, lm_loss, data, cfg.pretrain, checkpoint=self.log.checkpoint(label))
        for step, metrics in self.log.track(steps, cfg.pretrain.steps, label):
            with torch.no_grad():
                metrics["source_loss"] = lm_loss(model, self.evals.source).item()
            self.log.log(step, metrics, seed=self.seed, task="pretrain")
        return model.eval()

    # --------------------------------------------------------------- transfer task
    def transfer_arm(self, base_hf, method: str, lr: float, probe=None):
        """One (method, lr) on the transfer task; ``probe`` is LP's trained model, the
        start of LP-FT's second phase."""
        cfg, tasks, ev = self.cfg, self.tasks, self.evals
        gen = torch.Generator().manual_seed(30_000 + self.seed)  # the same head for all
        model = token_classifier(base_hf, tasks.n_classes, gen)
        if method == "lp-ft":
            model.load_state_dict(probe.state_dict())
        if method == "lora":
            model = with_lora(model, cfg.lora, 40_000 + self.seed, classifier=True)
        else:
            set_trainable(model, method)
        model = place(model)
        loss = lambda m, b: transfer_loss(m, b, tasks)  # noqa: E731
        val = lambda m: transfer_metrics(m, ev.id_val, tasks)["loss"]  # noqa: E731
        tags = {"task": "transfer", "method": method}
        self.fit(model, loss, tasks.id_lang, lr, f"transfer {method} lr{lr:g} s{self.seed}",
                 tags, val)  # fmt: skip
        return model.eval(), val(model)

    def transfer(self, base_hf, W_U) -> dict[str, Any]:
        """Every method at each of its learning rates; the best by ID validation loss."""
        cfg, tasks, ev = self.cfg, self.tasks, self.evals
        chosen: dict[str, tuple[Any, float]] = {}
        order = [m for m in ("lp", "ft", "lp-ft", "last-layer", "lora") if m in cfg.methods]
        if "lp-ft" in order and "lp" not in order:
            order.insert(0, "lp")  # LP-FT starts from the probe
        for method in order:
            best = None
            for lr in cfg.lrs[method]:
                probe = chosen["lp"][0] if method == "lp-ft" else None
                model, v = self.transfer_arm(base_hf, method, lr, probe)
                if best is None or v < best[2]:
                    best = (model, lr, v)
            chosen[method] = (best[0], best[1])
        out: dict[str, Any] = {}
        for method, (model, lr) in chosen.items():
            k = key_of(method)
            for split, tokens in (("id", ev.id_test), ("ood", ev.ood_test)):
                for name, value in transfer_metrics(model, tokens, tasks).items():
                    out[f"{k}_{split}_{name}"] = value
            out[f"{k}_forgetting"] = body_lm_loss(body(model), W_U, ev.source) - self.base_loss
            out[f"{k}_trainable"] = n_trainable(model)
            out[f"{k}_lr"] = lr
        self.transfer_models = {m: model for m, (model, _) in chosen.items()}
        return out

    # ----------------------------------------------------------------- domain task
    def domain(self, base_hf) -> dict[str, Any]:
        """Continued LM training on the new domain: full FT vs LoRA; forgetting is the
        rise of the old domain's loss."""
        cfg, tasks, ev = self.cfg, self.tasks, self.evals
        val = lambda m: lm_loss(m, ev.domain_val).item()  # noqa: E731
        out: dict[str, Any] = {}
        self.domain_models = {}
        for method in ("ft", "lora"):
            best = None
            for lr in cfg.domain_lrs[method]:
                model = causal_lm(base_hf)
                if method == "lora":
                    model = with_lora(model, cfg.lora, 50_000 + self.seed, classifier=False)
                else:
                    set_trainable(model, "ft")
                model = place(model)
                tags = {"task": "domain", "method": method}
                key = f"domain {method} lr{lr:g} s{self.seed}"
                self.fit(model, lm_loss, tasks.domain_lang, lr, key, tags, val)
                with torch.no_grad():
                    v = val(model)
                    old = lm_loss(model, ev.old_domain).item()
                point = {"target_val_loss": v, "forgetting": old - self.base_old_loss}
                self.log.log(0, point, seed=self.seed, lr=lr, task="domain_frontier", method=method)
                if best is None or v < best[1]:
                    best = (model.eval(), v, lr, old)
            model, _, lr, old = best
            with torch.no_grad():
                out[f"domain_{method}_target_loss"] = lm_loss(model, ev.domain_test).item()
            out[f"domain_{method}_forgetting"] = old - self.base_old_loss
            out[f"domain_{method}_trainable"] = n_trainable(model)
            out[f"domain_{method}_lr"] = lr
            self.domain_models[method] = model
        out["domain_target_optimal_loss"] = tasks.domain_lang.optimal_loss()
        return out

    # ----------------------------------------------------------------- measuring
    def updates(self, base: GPT, W_U, lm_head_of) -> dict[str, Any]:
        """ΔW of full FT (both tasks): spectrum, effective rank, top-r energy; overlap
        with LoRA's ΔW on the same task; CKA per layer for every transfer method."""
        r, out = self.cfg.energy_rank, {}
        for task, models in (("transfer", self.transfer_models), ("domain", self.domain_models)):
            gpts = {m: M.as_gpt(model, lm_head_of(task, model)) for m, model in models.items()}
            if "ft" in gpts:
                spectra = M.update_spectra(base, gpts["ft"], r)
                for i, (name, s) in enumerate(spectra.items()):
                    row = {
                        k: s[k] for k in ("eff_rank", "eff_rank_frac", "rel_norm", "energy_top_r")
                    }
                    self.log.log(i, row, seed=self.seed, task=f"{task}_dW", matrix=name)
                    for j, sv in enumerate(s["sv"]):
                        self.log.log(j, {"sv": float(sv)}, seed=self.seed, task=f"{task}_sv",
                                     matrix=name)  # fmt: skip
                vals = list(spectra.values())
                out[f"{task}_ft_dW_energy_top_r"] = float(
                    sum(v["energy_top_r"] for v in vals) / len(vals)
                )
                out[f"{task}_ft_dW_eff_rank_frac"] = float(
                    sum(v["eff_rank_frac"] for v in vals) / len(vals)
                )
                shapes = [v["shape"] for v in vals]
                out["random_energy_top_r"] = M.random_energy_top(shapes, r, self.seed)
                if "lora" in gpts:
                    phi = M.overlaps(base, gpts["ft"], gpts["lora"], self.cfg.lora.rank)
                    if phi:
                        out[f"{task}_ft_lora_overlap"] = float(sum(phi.values()) / len(phi))
                        chance = [min(self.cfg.lora.rank, s[0]) / s[0] for s in shapes]
                        out["overlap_chance"] = float(sum(chance) / len(chance))
            if task == "transfer":
                for method, gpt in gpts.items():
                    for split, tokens in (("id", self.evals.id_test), ("ood", self.evals.ood_test)):
                        cka = M.layer_cka(base, gpt, tokens)
                        for step, (label, value) in enumerate(cka.items()):
                            self.log.log(step, {"cka": value}, seed=self.seed, task="cka",
                                         method=method, split=split, layer=label)  # fmt: skip
                        out[f"{key_of(method)}_cka_last_{split}"] = value
        return out


def run_seed(cfg, seed: int, log: RunLog) -> tuple[dict[str, Any], list[dict], dict]:
    """Everything for one seed: (metrics, timings, the pretrained weights)."""
    s = Seed(cfg, seed, log)
    base = s.pretrain()
    with torch.no_grad():
        s.base_loss = lm_loss(base, s.evals.source).item()
        s.base_old_loss = lm_loss(base, s.evals.old_domain).item()
    base_hf = place(to_hf(base.cpu()))
    base = place(base)
    W_U = base_hf.lm_head.weight.detach()
    out = {"base_source_loss": s.base_loss, "source_optimal_loss": s.tasks.source.optimal_loss()}
    with torch.no_grad():
        out["domain_base_target_loss"] = lm_loss(base, s.evals.domain_test).item()
    out |= s.transfer(base_hf, W_U)
    s.domain_models = {}
    if cfg.domain:
        out |= s.domain(base_hf)

    def lm_head_of(task: str, model) -> torch.Tensor:
        if task == "transfer":
            return W_U
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        return inner.lm_head.weight

    out |= s.updates(base.cpu(), W_U, lm_head_of)
    # numpy, not tensors: a worker's tensors travel by file descriptors that die with it
    weights = {k: v.detach().cpu().numpy() for k, v in base.state_dict().items()}
    return out, s.timings, weights
