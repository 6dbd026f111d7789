"""Inspect a real model with one instrument: what do its layers represent?

Runs one registered instrument (:mod:`fmlab.instruments`: ``cka``, ``probe``,
``spectra``, ``calibration``, ``logit-lens`` and any a user adds) on every layer of a
loaded model (:mod:`fmlab.models.hf`) over a text set, and records it as a run
(``runs/inspect/<id>/``) so that ``fmlab report`` renders it. ``fmlab inspect`` is the
command-line front end.

It reads a model rather than reproducing a paper, so it states no claims.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from fmlab.config import Config, added_field, validate
from fmlab.device import place
from fmlab.instruments import INSTRUMENTS, Inspection
from fmlab.store import Run, RunData
from fmlab.study import study


class InspectConfig(Config):
    model: str = Field("minilm", description="alias (minilm, tiny-gpt2…), directory or hub id")
    instrument: str = Field("cka", description="a registered instrument (see `fmlab list`)")
    data: str = Field("sentences", description="builtin name or a .txt/.jsonl file")
    compare: str | None = Field(None, description="a second model, for model × model CKA")
    task: str = Field("auto", description="head to load: auto, base, causal-lm, masked-lm …")
    site: str = Field("resid_post", description="per-block site read as each layer")
    reduce: Literal["auto", "tokens", "mean", "last", "first"] = Field(
        "auto", description="auto: the instrument's default (tokens for cka, mean for probe)"
    )
    cka_kind: Literal["linear", "debiased", "rbf"] = "linear"
    label: str = Field("topic", description="label of the texts that the probe predicts")
    max_texts: int = Field(200, ge=4)
    max_length: int = Field(64, ge=2)
    batch_size: int = Field(32, ge=1)
    max_bytes: int = Field(512 * 2**20, ge=2**20, description="memory bound for activations")
    seed: int = 0
    allow_unsafe_pickle: bool = False
    trust_remote_code: bool = False
    options: dict[str, Any] = added_field({}, "the instrument's own options, if it has any")

    @field_validator("instrument")
    @classmethod
    def _registered(cls, name: str) -> str:
        INSTRUMENTS.get(name)  # an unknown name lists the known ones (did you mean)
        return name

    @model_validator(mode="after")
    def _options(self) -> InspectConfig:
        spec = INSTRUMENTS.get(self.instrument)
        if spec.options is not None:
            validate(spec.options, self.options)
        elif self.options:
            raise ValueError(f"instrument {self.instrument!r} takes no options")
        return self


SMOKE = InspectConfig(model="tiny-gpt2", instrument="cka", max_texts=24, max_length=24)
QUICK = InspectConfig(model="minilm", instrument="cka")
PAPER = InspectConfig(model="minilm", instrument="probe", label="tense")


def load_model(name: str, cfg: InspectConfig) -> Any:
    from fmlab.models.hf import load

    loaded = load(
        name,
        task=cfg.task,
        allow_unsafe_pickle=cfg.allow_unsafe_pickle,
        trust_remote_code=cfg.trust_remote_code,
        seed=cfg.seed,
    )
    place(loaded.model)  # on the run's device
    return loaded


def texts_of(cfg: InspectConfig) -> tuple[list[str], dict[str, list[str]]]:
    """The first ``max_texts`` texts of a seeded permutation, in their file order."""
    from fmlab.data import load_texts

    data = load_texts(cfg.data)
    keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(data.texts))[: cfg.max_texts])
    labels = {k: [v[i] for i in keep] for k, v in data.labels.items()}
    return [data.texts[i] for i in keep], labels


def figures(run: RunData) -> dict[str, Any]:
    """The instrument's own figure, drawn from artifacts/inspect.json."""
    path = run.artifacts / "inspect.json"
    name = run.config.get("instrument")
    if not path.exists() or name not in INSTRUMENTS:
        return {}
    draw = INSTRUMENTS.get(name).figure
    fig = draw(run, json.loads(path.read_text())) if draw is not None else None
    return {} if fig is None else {name: fig}


@study(
    "inspect",
    config=InspectConfig,
    presets={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    claims=(),
    title="Inspect a model: one instrument across its layers",
    citation="Kornblith et al. 2019 (CKA); Hewitt & Liang 2019 (control tasks); Guo et al. "
    "2017 (calibration); Roy & Vetterli 2007 (effective rank); nostalgebraist 2020 (logit lens)",
    figures=figures,
    preset_notes={"smoke": "random tiny GPT-2", "quick": "MiniLM CKA", "paper": "tense probe"},
)
def run(cfg: InspectConfig, run: Run) -> dict[str, Any]:
    texts, labels = texts_of(cfg)
    ins = Inspection(
        cfg=cfg,
        loaded=load_model(cfg.model, cfg),
        texts=texts,
        labels=labels,
        load=lambda name: load_model(name, cfg),
        track=run.track,
    )
    ins.info |= {"model": ins.describe(ins.loaded), "n_texts": len(texts), "data": cfg.data}
    measured = dict(INSTRUMENTS.get(cfg.instrument).measure(ins, run))
    run.save_json("inspect", ins.info)
    return {"n_texts": len(texts), **ins.metrics, **measured}
