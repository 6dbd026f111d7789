"""Adaptation methods on a Hugging Face GPT-2 exported (exactly) from fmlab's GPT.

* ``lp`` — linear probe: a fresh head on the frozen model (Kumar et al. 2022's LP);
* ``ft`` — full fine-tuning of every weight, the head from a random init;
* ``lp-ft`` — LP, then full fine-tuning from the probe's head (Kumar et al. 2022);
* ``last-layer`` — the last block, the final LayerNorm and the head;
* ``lora`` — LoRA through ``peft`` (Hu et al. 2022): rank, alpha, targets (``attn``,
  ``mlp``, ``all`` or module names) and rsLoRA (Kalajdzievski 2023) configurable; the
  head is trained too for a classifier (peft's ``modules_to_save``), nothing else for an
  LM (Biderman et al. 2024).

LoRA goes through ``peft`` on the exported model because fmlab's own ``Linear`` is not a
``torch.nn.Linear`` (its weight is (d_in, d_out), like transformers' ``Conv1D``), and peft
adapts ``Conv1D`` natively (``fan_in_fan_out=True``); the export is exact, so this *is*
fmlab's model. peft draws its A matrices from torch's global generator: they are made
under a forked RNG seeded from the run's seed, so the global state is left as it was.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from fmlab.config import Config
from fmlab.errors import UserInputError

Method = Literal["lp", "ft", "lp-ft", "last-layer", "lora"]
METHODS: tuple[Method, ...] = ("lp", "ft", "lp-ft", "last-layer", "lora")
GPT2_LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
TARGET_SETS = {"attn": GPT2_LINEARS[:2], "mlp": GPT2_LINEARS[2:], "all": GPT2_LINEARS}


class LoraSpec(Config):
    rank: int = Field(8, ge=1, description="r, the rank of B·A")
    alpha: float | None = Field(
        None, gt=0, description="scale alpha/r (alpha/√r with rslora); None = 2r"
    )
    targets: str | list[str] = Field(
        "all", description="attn | mlp | all, or block module names (attn.c_attn …)"
    )
    rslora: bool = Field(False, description="scale by alpha/√r (Kalajdzievski 2023)")

    @property
    def lora_alpha(self) -> float:
        return self.alpha if self.alpha is not None else 2.0 * self.rank


def linear_shapes(d_model: int, d_mlp: int) -> dict[str, tuple[int, int]]:
    """(d_in, d_out) of each adaptable GPT-2 block module."""
    D = d_model
    return {"attn.c_attn": (D, 3 * D), "attn.c_proj": (D, D), "mlp.c_fc": (D, d_mlp),
            "mlp.c_proj": (d_mlp, D)}  # fmt: skip


def resolve_targets(spec: LoraSpec, shapes: dict[str, tuple[int, int]]) -> list[str]:
    """The module names LoRA adapts; an unknown name or a rank above a targeted matrix's
    smaller side is one line naming the modules that exist."""
    names = [spec.targets] if isinstance(spec.targets, str) else list(spec.targets)
    if len(names) == 1 and names[0] in TARGET_SETS:
        names = list(TARGET_SETS[names[0]])
    for name in names:
        if name not in shapes:
            raise UserInputError(
                f"LoRA target {name!r} matches no module; this model's block modules are "
                f"{', '.join(shapes)} (or one of attn, mlp, all)"
            )
    for name in names:
        d_in, d_out = shapes[name]
        if spec.rank > min(d_in, d_out):
            raise UserInputError(
                f"LoRA rank {spec.rank} exceeds the rank of {name} ({d_in}×{d_out}); "
                f"choose ≤ {min(d_in, d_out)}"
            )
    if not names:
        raise UserInputError(f"LoRA needs at least one target among {', '.join(shapes)}")
    return names


def model_shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """(d_in, d_out) of the Conv1D/Linear modules of a GPT-2's first block, by the name
    they have inside a block."""
    from transformers.pytorch_utils import Conv1D

    out = {}
    for name, module in model.named_modules():
        parts = name.split(".")
        if "h" in parts and isinstance(module, Conv1D | nn.Linear):
            i = parts.index("h")
            if parts[i + 1] == "0":
                w = module.weight
                shape = tuple(w.shape) if isinstance(module, Conv1D) else tuple(w.shape[::-1])
                out[".".join(parts[i + 2 :])] = shape
    return out


def with_lora(model: nn.Module, spec: LoraSpec, seed: int, *, classifier: bool) -> nn.Module:
    """``peft.get_peft_model`` with ``spec`` (B = 0 at init: the output is unchanged)."""
    import peft

    targets = resolve_targets(spec, model_shapes(model))
    config = peft.LoraConfig(
        r=spec.rank,
        lora_alpha=spec.lora_alpha,
        target_modules=targets,
        lora_dropout=0.0,
        fan_in_fan_out=True,  # GPT-2's Conv1D stores (d_in, d_out)
        use_rslora=spec.rslora,
        bias="none",
        modules_to_save=["classifier"] if classifier else None,
    )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' own deprecation notes
        torch.manual_seed(seed)
        return peft.get_peft_model(model, config)


def token_classifier(base: nn.Module, n_labels: int, generator: torch.Generator) -> nn.Module:
    """A ``GPT2ForTokenClassification`` with ``base``'s transformer and a fresh head
    (N(0, 0.02²) weights — transformers' GPT-2 init — and zero bias, drawn from
    ``generator``); no dropout anywhere."""
    from transformers import GPT2Config, GPT2ForTokenClassification

    fields = base.config.to_dict()
    for key in ("id2label", "label2id", "architectures"):
        fields.pop(key, None)
    config = GPT2Config(**{**fields, "num_labels": n_labels, "classifier_dropout": 0.0})
    with torch.random.fork_rng(devices=[]):  # its own init is overwritten
        model = GPT2ForTokenClassification(config)
    model.transformer.load_state_dict(base.transformer.state_dict())
    with torch.no_grad():
        w = model.classifier.weight
        w.copy_(torch.randn(w.shape, generator=generator) * config.initializer_range)
        model.classifier.bias.zero_()
    return model


def causal_lm(base: nn.Module) -> nn.Module:
    return copy.deepcopy(base)


def head_of(model: nn.Module) -> nn.Module:
    return model.classifier if hasattr(model, "classifier") else model.lm_head


def set_trainable(model: nn.Module, method: str) -> None:
    """Freeze what ``method`` leaves alone (LoRA's freezing is peft's)."""
    if method in ("ft", "lp-ft"):
        keep = list(model.parameters())
    elif method == "lp":
        keep = list(head_of(model).parameters())
    elif method == "last-layer":
        t = model.transformer
        keep = [*t.h[-1].parameters(), *t.ln_f.parameters(), *head_of(model).parameters()]
    else:
        raise ValueError(f"unknown method {method!r}")
    ids = {id(p) for p in keep}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)


def n_trainable(model: nn.Module) -> int:
    """Trainable parameters (a tied unembedding counted once)."""
    seen = {id(p): p.numel() for p in model.parameters() if p.requires_grad}
    return sum(seen.values())


def merged(model: nn.Module) -> nn.Module:
    """A plain transformers model computing what ``model`` computes (LoRA merged into
    its weights, on a copy)."""
    if hasattr(model, "merge_and_unload"):
        return copy.deepcopy(model).merge_and_unload()
    return model


def body(model: nn.Module) -> nn.Module:
    """The GPT-2 transformer inside a (peft-wrapped) model."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.transformer


def describe(method: str, spec: LoraSpec | None) -> dict[str, Any]:
    if method != "lora" or spec is None:
        return {"method": method}
    return {"method": method, "rank": spec.rank, "alpha": spec.lora_alpha, "rslora": spec.rslora}
