"""Training the grokking models: one at a time, or many as one batched ensemble.

A *member* is one model to train: a seed, a variant (``baseline`` or ``grokfast``), its
training config and the run (with tags) it logs to. Members of one run (several seeds,
with and without Grokfast) or of several runs of a sweep (``run_batch``) can be
trained together by :mod:`fmlab.train.ensemble`; each member's curve, weights and
summary are the same as if it had been trained alone (to float rounding).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from fmlab.device import place
from fmlab.measure.fourier import embedding_spectrum
from fmlab.models import GPT
from fmlab.store import Run
from fmlab.studies.grokking import progress as pm
from fmlab.tasks.modular import ModularData
from fmlab.train import Diverged, TrainConfig, iterate_batches, train
from fmlab.train.ensemble import Ensemble, train_ensemble


@dataclass
class Member:
    seed: int
    variant: str
    train: TrainConfig
    run: Run
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tracker:
    """First steps at which accuracies cross their thresholds; the stop rule."""

    thresholds: dict[str, tuple[str, float]]
    patience: int | None
    first: dict[str, int | None] = field(default_factory=dict)
    stopped_at: int | None = None
    step: int = 0
    last: dict[str, float] = field(default_factory=dict)

    def update(self, step: int, metrics: dict[str, float]) -> bool:
        """Record ``metrics`` at ``step``; True once the member should stop."""
        self.step, self.last = step, metrics
        for key, (name, threshold) in self.thresholds.items():
            if self.first.get(key) is None and metrics[name] >= threshold:
                self.first[key] = step
        grokked = self.first.get("test99")
        if self.patience is not None and grokked is not None and step >= grokked + self.patience:
            self.stopped_at = step
        return self.stopped_at is not None


def loss_fn(model: GPT, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x, last_only=True)[:, -1], y)


def ensemble_loss(call: Ensemble, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch  # (K, B, 3), (K, B): every member's own batch
    logits = call(x, stacked=True, last_only=True)[:, :, -1]  # (K, B, V)
    return (
        F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
    )


@torch.no_grad()
def evaluate(logits_of, data: ModularData, keep: dict | None = None) -> list[dict[str, float]]:
    """Train/test loss and accuracy of each model; ``logits_of(x)`` gives (K, N, V).
    ``keep``, if given, receives each split's logits (for the progress measures)."""
    per = None
    for split, x, y in (("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
        logits = logits_of(x).double()  # (K, N, V)
        if keep is not None:
            keep[split] = logits
        losses = F.cross_entropy(
            logits.transpose(1, 2), y.expand(len(logits), -1), reduction="none"
        )
        accs = (logits.argmax(-1) == y).double().mean(1)
        per = per or [{} for _ in range(len(logits))]
        for k, m in enumerate(per):
            m[f"{split}_loss"], m[f"{split}_acc"] = losses[k].mean().item(), accs[k].item()
    return per


def weight_stats(state: dict[str, torch.Tensor], p: int, k_top: int) -> dict[str, float]:
    spectrum = embedding_spectrum(state["W_E"], p)
    return {
        "weight_norm": torch.sqrt(sum((w.double() ** 2).sum() for w in state.values())).item(),
        "fourier_top_k_frac": spectrum.top_k_fraction(k_top),
        "fourier_eff_freqs": spectrum.effective_frequencies,
    }


def build(model_cfg, data: ModularData, seed: int) -> tuple[GPT, torch.Generator]:
    gen = torch.Generator().manual_seed(seed)
    model = GPT(model_cfg, vocab_size=data.vocab_size, seq_len=data.seq_len, generator=gen)
    return place(model), gen


def train_members(
    cfg, data: ModularData, members: Sequence[Member], *, batched: bool
) -> list[dict[str, Any]]:
    """Train every member (batched when asked and there are several); log curves to
    each member's run; return each member's summary numbers — or, for a member whose
    loss became NaN/inf, the :class:`Diverged` it ended with."""
    built = [build(cfg.model, data, m.seed) for m in members]
    models = [b[0] for b in built]
    batch_iters = [
        iterate_batches((data.train_x, data.train_y), m.train.batch_size, gen)
        for m, (_, gen) in zip(members, built, strict=True)
    ]
    thresholds = {
        "train": ("train_acc", cfg.train_acc_threshold),
        "test": ("test_acc", cfg.test_acc_threshold),
        "test99": ("test_acc", 0.99),
    }
    trackers = [Tracker(thresholds, cfg.stop_after_grok) for _ in members]
    progress = (
        [pm.Progress.for_steps(m.train.steps, m.train.eval_every) for m in members]
        if pm.applies(data, cfg.model)
        else None
    )
    initial = [
        weight_stats(dict(m.named_parameters()), data.p, cfg.key_frequencies) for m in models
    ]
    spectra0 = [embedding_spectrum(m.W_E, data.p).fractions for m in models]
    if batched and len(members) > 1:
        finals = _train_batched(cfg, data, members, models, batch_iters, trackers, progress)
    else:
        finals = [
            _train_one(cfg, data, m, model, it, tr, None if progress is None else progress[i])
            for i, (m, model, it, tr) in enumerate(
                zip(members, models, batch_iters, trackers, strict=True)
            )
        ]
    results: list[dict[str, Any] | Diverged] = []
    for k, (m, state, tr, init, spec0) in enumerate(
        zip(members, finals, trackers, initial, spectra0, strict=True)
    ):
        if isinstance(state, Diverged):
            results.append(state)
            continue
        m.run.save_weights(f"model_{m.variant}_seed{m.seed}", state)
        final = weight_stats(state, data.p, cfg.key_frequencies)
        spectrum = embedding_spectrum(state["W_E"], data.p).fractions
        m.run.save_json(f"fourier_{m.variant}_seed{m.seed}", {"init": spec0, "final": spectrum})
        result = _summary(tr, init, final)
        if progress is not None and progress[k].steps:
            model = build(cfg.model, data, m.seed)[0]
            model.load_state_dict(state)
            extra, saved = pm.finish(
                m, progress[k], model, data, cfg.model.n_layers, tr.first.get("train")
            )
            m.run.save_json(f"progress_{m.variant}_seed{m.seed}", saved)
            result |= extra
        results.append(result)
    return results


def _log(member: Member, tracker: Tracker, step: int, metrics: dict[str, float]) -> bool:
    member.run.log(step, metrics, seed=member.seed, variant=member.variant, **member.tags)
    return tracker.update(step, metrics)


def _tracking(trackers: Sequence[Tracker], finals: list | None = None, progress=None):
    """``state``/``restore`` of a loop body that updates ``trackers`` (and ``finals``,
    and the progress recorders)."""

    def state() -> dict[str, Any]:
        kept = None if finals is None else [_final_state(f) for f in finals]
        recorded = None if progress is None else [dataclasses.asdict(r) for r in progress]
        return {
            "trackers": [dataclasses.asdict(t) for t in trackers],
            "finals": kept,
            "progress": recorded,
        }

    def restore(saved: dict[str, Any]) -> None:
        for tracker, fields in zip(trackers, saved["trackers"], strict=True):
            for name, value in fields.items():
                setattr(tracker, name, value)
        if finals is not None:
            finals[:] = [_final_from(f) for f in saved["finals"]]
        for recorder, fields in zip(progress or [], saved.get("progress") or [], strict=True):
            for name, value in fields.items():
                setattr(recorder, name, list(value) if isinstance(value, tuple) else value)

    return {"state": state, "restore": restore}


def _final_state(final: Any) -> Any:
    return {"diverged": final.step} if isinstance(final, Diverged) else final


def _final_from(saved: Any) -> Any:
    if isinstance(saved, dict) and set(saved) == {"diverged"}:
        return Diverged(saved["diverged"], float("nan"))
    return saved


def _train_one(cfg, data, member: Member, model: GPT, batches, tracker: Tracker, progress=None):
    label = f"{member.variant} s{member.seed}"
    ckpt = member.run.checkpoint(
        label, **_tracking([tracker], progress=None if progress is None else [progress])
    )
    loop = train(model, loss_fn, batches, member.train, checkpoint=ckpt)
    try:
        for step, metrics in member.run.track(loop, member.train.steps, label):
            logits: dict[str, torch.Tensor] = {}
            metrics |= evaluate(lambda x: model(x, last_only=True)[None, :, -1], data, logits)[0]
            state = dict(model.named_parameters())
            metrics |= weight_stats(state, data.p, cfg.key_frequencies)
            stop = _log(member, tracker, step, metrics)
            last = stop or step == member.train.steps
            if progress is not None and progress.due(step, member.train.eval_every, last):
                progress.record(
                    step,
                    logits["train"][0],
                    logits["test"][0],
                    data,
                    state,
                    cfg.model.n_layers,
                    metrics,
                )
            if stop:
                break
    except Diverged as d:
        return d
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


def _train_batched(cfg, data, members, models, batch_iters, trackers, progress=None) -> list:
    ensemble = Ensemble(models)
    stacked = (
        tuple(torch.stack(t) for t in zip(*b, strict=True)) for b in zip(*batch_iters, strict=False)
    )
    finals: list[dict | Diverged | None] = [None] * len(members)
    label = f"{len(members)} models batched"
    who = ",".join(f"{m.run.run_id}/{m.variant}/s{m.seed}" for m in members)
    ckpt = members[0].run.checkpoint(
        f"batched {who}",
        also=[m.run for m in members],
        **_tracking(trackers, finals, progress),
    )
    cfgs = [m.train for m in members]
    loop = train_ensemble(ensemble, ensemble_loss, stacked, cfgs, checkpoint=ckpt)
    for step, per_member in members[0].run.track(loop, members[0].train.steps, label):
        logits: dict[str, torch.Tensor] = {}
        evals = evaluate(lambda x: ensemble(x, last_only=True)[:, :, -1], data, logits)
        for k, (member, tracker) in enumerate(zip(members, trackers, strict=True)):
            if finals[k] is not None:
                continue
            if "diverged_at_step" in per_member[k]:
                finals[k] = Diverged(per_member[k]["diverged_at_step"], float("nan"))
                continue
            state = ensemble.member_state(k)
            metrics = per_member[k] | evals[k] | weight_stats(state, data.p, cfg.key_frequencies)
            last = _log(member, tracker, step, metrics) or step == members[0].train.steps
            if progress is not None and progress[k].due(step, member.train.eval_every, last):
                progress[k].record(
                    step,
                    logits["train"][k],
                    logits["test"][k],
                    data,
                    state,
                    cfg.model.n_layers,
                    metrics,
                )
            if last:
                finals[k] = state
        if all(f is not None for f in finals):
            break
    return [f if f is not None else ensemble.member_state(k) for k, f in enumerate(finals)]


def _summary(tr: Tracker, init: dict[str, float], final: dict[str, float]) -> dict[str, Any]:
    train99, test95 = tr.first.get("train"), tr.first.get("test")
    return {
        "step_train_acc_99": train99,
        "step_test_acc_95": test95,
        "grok_delay": test95 / max(train99, 1) if test95 and train99 else None,
        "train_acc_final": tr.last["train_acc"],
        "test_acc_final": tr.last["test_acc"],
        "steps_run": tr.step,
        "weight_norm_final": final["weight_norm"],
        "fourier_top_k_frac_init": init["fourier_top_k_frac"],
        "fourier_top_k_frac_final": final["fourier_top_k_frac"],
        "fourier_eff_freqs_init": init["fourier_eff_freqs"],
        "fourier_eff_freqs_final": final["fourier_eff_freqs"],
        "fourier_freq_ratio": final["fourier_eff_freqs"] / init["fourier_eff_freqs"],
    }
