"""The instrument contract: one measure over a model's layers, and its figure.

An instrument is one file in :mod:`fmlab.instruments` that registers a measure function
with :func:`instrument`::

    @instrument("norms", help="mean activation norm per layer", reduce="tokens",
                figure=norms_figure)
    def norms(ins: Inspection, run: RunLog) -> dict[str, float]:
        acts = ins.layer_activations()                 # embed, block 0, 1, … (rows, D)
        for i, (label, x) in enumerate(zip(acts.labels, acts.tensors)):
            run.log(i, {"norm": float(x.norm(dim=-1).mean())}, layer=label)
        ins.info["norms"] = …                          # -> artifacts/inspect.json
        return {"norm_last": …}                        # summary metrics

``fmlab inspect MODEL --instrument norms`` then runs it (the ``inspect`` study loads the
model and the texts, calls the measure, and records the run); the report shows what
``figure(run, info)`` draws from ``info`` (artifacts/inspect.json) and the logged rows.
The math lives in :mod:`fmlab.measure` (pure functions); an instrument applies it across
a model's sites (:mod:`fmlab.hooks`) and says how to show it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fmlab.config import Config, validate
from fmlab.errors import UserInputError
from fmlab.registry import Registry

if TYPE_CHECKING:  # importing the registry (for --help, fmlab list) must not import torch
    from torch import Tensor, nn

Track = Callable[[Iterable[Any], int, str], Iterable[Any]]
Measure = Callable[["Inspection", Any], Mapping[str, Any]]
Figure = Callable[[Any, dict[str, Any]], Any]  # (RunData, info) -> matplotlib Figure | None


def _no_track(items: Iterable[Any], total: int, label: str) -> Iterable[Any]:
    return items


@dataclass(frozen=True)
class Instrument:
    """A registered instrument. ``reduce`` is the default reduction of layer activations
    (``tokens``, ``mean`` …; None for instruments that read no layers); ``check(cfg,
    texts)`` refuses bad input before a run directory exists; ``options`` is a Config
    class for the instrument's own settings (``--set options.<name>=…``)."""

    name: str
    help: str
    measure: Measure
    figure: Figure | None = None
    reduce: str | None = None
    check: Callable[[Any, Any], None] | None = None
    options: type[Config] | None = None


INSTRUMENTS: Registry[Instrument] = Registry("instrument")


def instrument(
    name: str,
    *,
    help: str,
    figure: Figure | None = None,
    reduce: str | None = None,
    check: Callable[[Any, Any], None] | None = None,
    options: type[Config] | None = None,
) -> Callable[[Measure], Measure]:
    """Register the decorated measure function as instrument ``name``."""

    def add(measure: Measure) -> Measure:
        INSTRUMENTS.add(name, Instrument(name, help, measure, figure, reduce, check, options))
        return measure

    return add


# ---- what a measure function is handed -------------------------------------------------


@dataclass(frozen=True)
class LayerActivations:
    """Activations of ``embed`` and every block's output, one (rows, D) tensor each."""

    labels: list[str]  # embed, 0, 1, …
    sites: list[str]  # the canonical site names read
    tensors: list[Tensor]
    reduce: str


@dataclass
class Inspection:
    """What an instrument measures: the loaded model, the texts (and their labels), the
    tokenised batches and the inspect config; ``info`` is saved as artifacts/inspect.json
    for the figure, ``metrics`` join the run's summary metrics."""

    cfg: Any  # the inspect study's config
    loaded: Any  # fmlab.models.hf.LoadedModel
    texts: list[str]
    labels: dict[str, list[str]]
    load: Callable[[str], Any]  # another model by name (e.g. cka's --compare)
    track: Track = _no_track
    info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    _batches: list[dict] | None = None

    @property
    def model(self) -> nn.Module:
        return self.loaded.model

    @property
    def batches(self) -> list[dict]:
        if self._batches is None:
            self._batches = self.encode(self.loaded)
        return self._batches

    @property
    def options(self) -> Config | None:
        """The instrument's own options, validated (None if it declares none)."""
        spec = INSTRUMENTS.get(self.cfg.instrument)
        return None if spec.options is None else validate(spec.options, self.cfg.options)

    def describe(self, loaded: Any) -> dict[str, Any]:
        """Name, path, class, family, weights and size of a loaded model (for ``info``)."""
        from fmlab.hooks import family_of

        return {
            "name": loaded.name,
            "path": str(loaded.path) if loaded.path else None,
            "class": type(loaded.model).__name__,
            "family": family_of(loaded.model).name,
            "weights": loaded.weights,
            "n_params": sum(p.numel() for p in loaded.model.parameters()),
        }

    def encode(self, loaded: Any) -> list[dict]:
        """The texts as batches for ``loaded``, on its device."""
        from fmlab.device import device_of, place

        config = getattr(loaded.model, "config", None)  # texts never exceed the positions
        limits = (getattr(config, k, None) for k in ("n_positions", "max_position_embeddings"))
        max_length = min([self.cfg.max_length, *(n for n in limits if isinstance(n, int))])
        batches = encode(loaded.tokenizer, self.texts, self.cfg.batch_size, max_length)
        return place(batches, device_of(loaded.model))

    def layer_activations(self, loaded: Any = None) -> LayerActivations:
        """``embed`` and each block's ``cfg.site``, reduced by ``cfg.reduce`` (``auto``:
        the instrument's default), of ``loaded`` (default: the inspected model)."""
        mine = loaded is None
        loaded = self.loaded if mine else loaded
        labels, sites = layers(loaded.model, self.cfg.site)
        reduce = self.cfg.reduce
        if reduce == "auto":
            reduce = INSTRUMENTS.get(self.cfg.instrument).reduce or "tokens"
        batches = self.batches if mine else self.encode(loaded)
        acts = capture_layers(loaded.model, batches, sites, reduce, self.cfg.max_bytes, self.track)
        if mine:
            n_rows, width = acts[0].shape
            self.metrics |= {"n_layers": len(sites) - 1, "n_rows": n_rows, "d_model": width}
            self.info |= {"layers": labels, "sites": sites, "reduce": reduce}
        return LayerActivations(labels, sites, acts, reduce)


def encode(tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int) -> list[dict]:
    """Tokenised, right-padded batches (dicts of input_ids and attention_mask)."""
    if tokenizer is None:
        raise UserInputError("this model has no tokenizer: fmlab inspect needs a text model")
    batches = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[i : i + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batches.append({k: enc[k] for k in ("input_ids", "attention_mask") if k in enc})
    return batches


def layers(model: nn.Module, kind: str = "resid_post") -> tuple[list[str], list[str]]:
    """(labels, site names) of the layers of a single-tower model: ``embed`` then each
    block's ``kind`` site, labelled ``embed, 0, 1, …``."""
    from fmlab.hooks import block_sites, resolve_sites

    sites = resolve_sites(model)
    if "embed" not in sites:
        towers = sorted({n.split(".")[0] for n in sites if n.split(".")[0] != "logits"})
        raise UserInputError(
            f"{type(model).__name__} has several towers ({', '.join(towers)}); fmlab inspect "
            "reads single-tower text models. Use fmlab.hooks from Python for the others."
        )
    blocks = block_sites(model, kind)
    return ["embed", *(str(i) for i in range(len(blocks)))], ["embed", *blocks]


def capture_layers(
    model: nn.Module,
    batches: list[dict],
    sites: list[str],
    reduce: str,
    max_bytes: int,
    track: Track = _no_track,
) -> list[Tensor]:
    from fmlab.hooks import capture_dataset

    acts = capture_dataset(
        model, track(batches, len(batches), "capture"), sites, reduce=reduce, max_bytes=max_bytes
    )
    return [acts[s].cpu() for s in sites]  # measured on the CPU, in float64


def lm_kind(model: nn.Module) -> str:
    """``causal`` or ``masked`` by the model class; anything else has no LM head."""
    name = type(model).__name__
    if "CausalLM" in name or "LMHeadModel" in name:
        return "causal"
    if "MaskedLM" in name:
        return "masked"
    from fmlab.models.gpt import GPT

    if isinstance(model, GPT):
        return "causal"
    raise UserInputError(
        f"{name} has no language-model head: this instrument needs a causal or masked LM "
        "(load with --task causal-lm or masked-lm)"
    )
