"""Grokking: a small transformer memorises modular arithmetic quickly, and generalises
to the held-out pairs only long afterwards (Power et al. 2022, "Grokking:
Generalization beyond overfitting on small algorithmic datasets"); by then its token
embedding has become sparse in the Fourier basis of Z_p (Nanda et al. 2023,
"Progress measures for grokking via mechanistic interpretability").

Claim in one sentence: with weight decay, test accuracy reaches 95 % many times later
than train accuracy reaches 99 %, and the final embedding uses a few Fourier
frequencies. Optionally compares Grokfast-EMA (Lee et al. 2024) on the same seeds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from fmlab.claims import Claim
from fmlab.config import Config
from fmlab.measure.fourier import embedding_spectrum
from fmlab.models import GPT, GPTConfig
from fmlab.store import Run
from fmlab.studies.grokking_figures import figures
from fmlab.study import study
from fmlab.tasks.modular import ModularConfig, ModularData, make_data
from fmlab.train import GrokfastConfig, TrainConfig, iterate_batches, train


class GrokkingConfig(Config):
    task: ModularConfig = ModularConfig()
    model: GPTConfig = GPTConfig(n_layers=1, d_model=128, n_heads=4, d_mlp=512, norm="none")
    train: TrainConfig = TrainConfig(
        steps=3000, lr=3e-3, weight_decay=1.0, betas=(0.9, 0.98), eval_every=10
    )
    seeds: list[int] = Field([0, 1, 2], min_length=1, description="model-init/batch seeds")
    compare_grokfast: GrokfastConfig | None = Field(
        None, description="also train each seed with Grokfast-EMA and compare"
    )
    train_acc_threshold: float = Field(0.99, gt=0, le=1)
    test_acc_threshold: float = Field(0.95, gt=0, le=1)
    stop_after_grok: int | None = Field(
        None, ge=0, description="stop this many steps after test acc first reaches 0.99"
    )
    key_frequencies: int = Field(5, ge=1, description="k of the top-k Fourier energy share")


SMOKE = GrokkingConfig(
    task=ModularConfig(p=13, train_frac=0.6),
    model=GPTConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=64, norm="none"),
    train=TrainConfig(steps=60, lr=3e-3, weight_decay=1.0, betas=(0.9, 0.98), eval_every=10),
    seeds=[0],
    compare_grokfast=GrokfastConfig(),
)
QUICK = GrokkingConfig(
    task=ModularConfig(p=59, train_frac=0.4),
    train=TrainConfig(steps=3000, lr=3e-3, weight_decay=1.0, betas=(0.9, 0.98), eval_every=10),
    seeds=[0, 1, 2],
    stop_after_grok=500,
)
PAPER = GrokkingConfig(  # Nanda et al. 2023: p=113, 30 % train, full batch, 40k epochs
    task=ModularConfig(p=113, train_frac=0.3),
    train=TrainConfig(steps=40000, lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98), eval_every=100),
    seeds=[0, 1, 2],
    compare_grokfast=GrokfastConfig(alpha=0.98, lamb=2.0),
)

SOURCE_POWER = "Power et al. 2022"
SOURCE_NANDA = "Nanda et al. 2023"
CLAIMS = (
    Claim(
        "delayed-generalization",
        SOURCE_POWER,
        "test accuracy reaches 95% at least 3x later than train accuracy reaches 99%",
        "grok_delay",
        ">=",
        3.0,
        decide_by="ci",
    ),
    Claim(
        "eventual-generalization",
        SOURCE_POWER,
        "test accuracy eventually exceeds 95% on held-out pairs",
        "test_acc_final",
        ">=",
        0.95,
        decide_by="ci",
    ),
    Claim(
        "sparse-fourier-embedding",
        SOURCE_NANDA,
        "the final embedding uses at most half as many Fourier frequencies as at init "
        "(participation ratio of frequency energies)",
        "fourier_freq_ratio",
        "<=",
        0.5,
        decide_by="ci",
    ),
)


def loss_fn(model: GPT, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x, last_only=True)[:, -1], y)


@torch.no_grad()
def evaluate(model: GPT, data: ModularData) -> dict[str, float]:
    out = {}
    for split, x, y in (("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
        logits = model(x, last_only=True)[:, -1]
        out[f"{split}_loss"] = F.cross_entropy(logits.double(), y).item()
        out[f"{split}_acc"] = (logits.argmax(-1) == y).double().mean().item()
    out["weight_norm"] = torch.sqrt(sum((p.double() ** 2).sum() for p in model.parameters())).item()
    return out


def fourier_metrics(model: GPT, p: int, k: int) -> dict[str, float]:
    spectrum = embedding_spectrum(model.W_E, p)
    return {
        "fourier_top_k_frac": spectrum.top_k_fraction(k),
        "fourier_eff_freqs": spectrum.effective_frequencies,
    }


def train_seed(
    cfg: GrokkingConfig,
    data: ModularData,
    seed: int,
    train_cfg: TrainConfig,
    variant: str,
    run: Run,
) -> dict[str, float | None]:
    """Train one model; log its curves; return its first-crossing steps and finals."""
    gen = torch.Generator().manual_seed(seed)
    model = GPT(cfg.model, vocab_size=data.vocab_size, seq_len=data.seq_len, generator=gen)
    batches = iterate_batches((data.train_x, data.train_y), train_cfg.batch_size, gen)
    first: dict[str, int | None] = {"train": None, "test": None, "test99": None}
    initial = fourier_metrics(model, data.p, cfg.key_frequencies)
    spectrum_init = embedding_spectrum(model.W_E, data.p).fractions
    steps = run.track(
        train(model, loss_fn, batches, train_cfg), train_cfg.steps, f"{variant} s{seed}"
    )
    for step, metrics in steps:
        metrics |= evaluate(model, data) | fourier_metrics(model, data.p, cfg.key_frequencies)
        run.log(step, metrics, seed=seed, variant=variant)
        for key, name, threshold in (
            ("train", "train_acc", cfg.train_acc_threshold),
            ("test", "test_acc", cfg.test_acc_threshold),
            ("test99", "test_acc", 0.99),
        ):
            if first[key] is None and metrics[name] >= threshold:
                first[key] = step
        if _done(cfg.stop_after_grok, first["test99"], step):
            break
    run.save_weights(f"model_{variant}_seed{seed}", model)
    spectrum_final = embedding_spectrum(model.W_E, data.p).fractions
    run.save_json(f"fourier_{variant}_seed{seed}", {"init": spectrum_init, "final": spectrum_final})
    final = fourier_metrics(model, data.p, cfg.key_frequencies)
    delay = first["test"] / max(first["train"], 1) if first["test"] and first["train"] else None
    return {
        "step_train_acc_99": first["train"],
        "step_test_acc_95": first["test"],
        "grok_delay": delay,
        "train_acc_final": metrics["train_acc"],
        "test_acc_final": metrics["test_acc"],
        "steps_run": step,
        "weight_norm_final": metrics["weight_norm"],
        "fourier_top_k_frac_init": initial["fourier_top_k_frac"],
        "fourier_top_k_frac_final": final["fourier_top_k_frac"],
        "fourier_eff_freqs_init": initial["fourier_eff_freqs"],
        "fourier_eff_freqs_final": final["fourier_eff_freqs"],
        "fourier_freq_ratio": final["fourier_eff_freqs"] / initial["fourier_eff_freqs"],
    }


def mean_ci(values: list[float]):  # TEMPORARY until fmlab.stats lands
    from types import SimpleNamespace

    import numpy as np
    from scipy import stats as st

    a = np.asarray(values, float)
    m = float(a.mean())
    if len(a) < 2:
        return SimpleNamespace(estimate=m, low=m, high=m)
    h = float(st.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)))
    return SimpleNamespace(estimate=m, low=m - h, high=m + h)


def _done(patience: int | None, grokked_at: int | None, step: int) -> bool:
    return patience is not None and grokked_at is not None and step >= grokked_at + patience


def aggregate(per_seed: list[dict[str, float | None]], prefix: str = "") -> dict[str, object]:
    """Mean and 95 % t-interval over seeds of every per-seed number (None = not reached)."""
    out: dict[str, object] = {}
    for key in per_seed[0]:
        values = [r[key] for r in per_seed]
        reached = [float(v) for v in values if v is not None]
        out[f"{prefix}{key}_by_seed"] = values
        if len(reached) < len(values):  # a seed that never got there: no mean
            out[f"{prefix}{key}"] = None
            continue
        ci = mean_ci(reached)
        out[f"{prefix}{key}"] = ci.estimate
        if len(reached) > 1:
            out[f"{prefix}{key}_ci_low"], out[f"{prefix}{key}_ci_high"] = ci.low, ci.high
    return out


@study(
    "grokking",
    config=GrokkingConfig,
    presets={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    claims=CLAIMS,
    title="Grokking: delayed generalization on modular arithmetic",
    citation="Power et al. 2022 (arXiv 2201.02177); Nanda et al. 2023 (arXiv 2301.05217); "
    "Lee et al. 2024 (Grokfast, arXiv 2405.20233)",
    figures=figures,
)
def run(cfg: GrokkingConfig, run: Run) -> dict[str, object]:
    data = make_data(cfg.task)
    per_seed = [train_seed(cfg, data, s, cfg.train, "baseline", run) for s in cfg.seeds]
    metrics = aggregate(per_seed)
    metrics.update(n_seeds=len(cfg.seeds), n_train=len(data.train_y), n_test=len(data.test_y))
    if cfg.compare_grokfast is not None:
        fast_cfg = cfg.train.model_copy(update={"grokfast": cfg.compare_grokfast})
        fast = [train_seed(cfg, data, s, fast_cfg, "grokfast", run) for s in cfg.seeds]
        metrics.update(aggregate(fast, prefix="grokfast_"))
        speedups = [
            b["step_test_acc_95"] / f["step_test_acc_95"]
            if b["step_test_acc_95"] and f["step_test_acc_95"]
            else None
            for b, f in zip(per_seed, fast, strict=True)
        ]
        metrics.update(aggregate([{"grokfast_speedup": s} for s in speedups]))
    return metrics
