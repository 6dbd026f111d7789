"""Inspect a real model with one instrument: what do its layers represent?

Runs one validated instrument of :mod:`fmlab.measure` on every layer of a loaded model
(:mod:`fmlab.models.hf`) over a text set, and records it as a run
(``runs/inspect/<id>/``) so that ``fmlab report`` renders it. ``fmlab inspect`` is the
command-line front end.

* ``cka`` — layer × layer linear CKA (Kornblith et al. 2019), or model × model with
  ``compare``;
* ``probe`` — a linear probe per layer for a label of the texts, with a control task
  (Hewitt & Liang 2019);
* ``spectra`` — effective rank (Roy & Vetterli 2007) and participation ratio per layer;
* ``calibration`` — ECE/Brier/NLL of the LM head's token predictions and temperature
  scaling fitted on held-out tokens (Guo et al. 2017);
* ``logit-lens`` — each layer decoded with the final norm + unembedding
  (nostalgebraist 2020).

It reads a model rather than reproducing a paper, so it states no claims.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
from pydantic import Field

from fmlab.config import Config
from fmlab.hooks import instruments as ins
from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.store import Run, RunData
from fmlab.study import study

Instrument = Literal["cka", "probe", "calibration", "logit-lens", "spectra"]


class InspectConfig(Config):
    model: str = Field("minilm", description="alias (minilm, tiny-gpt2…), directory or hub id")
    instrument: Instrument = "cka"
    data: str = Field("sentences", description="builtin name or a .txt/.jsonl file")
    compare: str | None = Field(None, description="a second model, for model × model CKA")
    task: str = Field("auto", description="head to load: auto, base, causal-lm, masked-lm …")
    site: str = Field("resid_post", description="per-block site read as each layer")
    reduce: Literal["auto", "tokens", "mean", "last", "first"] = Field(
        "auto", description="auto: tokens for cka/spectra, mean for probe"
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


SMOKE = InspectConfig(model="tiny-gpt2", instrument="cka", max_texts=24, max_length=24)
QUICK = InspectConfig(model="minilm", instrument="cka")
PAPER = InspectConfig(model="minilm", instrument="probe", label="tense")


def _load(name: str, cfg: InspectConfig) -> Any:
    from fmlab.models.hf import load

    return load(
        name,
        task=cfg.task,
        allow_unsafe_pickle=cfg.allow_unsafe_pickle,
        trust_remote_code=cfg.trust_remote_code,
        seed=cfg.seed,
    )


def _texts(cfg: InspectConfig) -> tuple[list[str], dict[str, list[str]]]:
    from fmlab.data import load_texts

    data = load_texts(cfg.data)
    keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(data.texts))[: cfg.max_texts])
    labels = {k: [v[i] for i in keep] for k, v in data.labels.items()}
    return [data.texts[i] for i in keep], labels


def _describe(loaded: Any) -> dict[str, Any]:
    from fmlab.hooks import family_of

    return {
        "name": loaded.name,
        "path": str(loaded.path) if loaded.path else None,
        "class": type(loaded.model).__name__,
        "family": family_of(loaded.model).name,
        "weights": loaded.weights,
        "n_params": sum(p.numel() for p in loaded.model.parameters()),
    }


@study(
    "inspect",
    config=InspectConfig,
    presets={"smoke": SMOKE, "quick": QUICK, "paper": PAPER},
    claims=(),
    title="Inspect a model: one instrument across its layers",
    citation="Kornblith et al. 2019 (CKA); Hewitt & Liang 2019 (control tasks); Guo et al. "
    "2017 (calibration); Roy & Vetterli 2007 (effective rank); nostalgebraist 2020 (logit lens)",
    figures=lambda run: figures(run),
    preset_notes={"smoke": "random tiny GPT-2", "quick": "MiniLM CKA", "paper": "tense probe"},
)
def run(cfg: InspectConfig, run: Run) -> dict[str, Any]:
    loaded = _load(cfg.model, cfg)
    texts, labels = _texts(cfg)
    batches = ins.encode(loaded.tokenizer, texts, cfg.batch_size, cfg.max_length)
    info = {"model": _describe(loaded), "n_texts": len(texts), "data": cfg.data}
    out: dict[str, Any] = {"n_texts": len(texts)}
    if cfg.instrument in ("cka", "probe", "spectra"):
        names, sites = ins.layers(loaded.model, cfg.site)
        default = "mean" if cfg.instrument == "probe" else "tokens"
        reduce = default if cfg.reduce == "auto" else cfg.reduce
        feats = ins.activations(loaded.model, batches, sites, reduce, cfg.max_bytes, run.track)
        out |= {"n_layers": len(sites) - 1, "n_rows": len(feats[0]), "d_model": feats[0].shape[1]}
        info |= {"layers": names, "sites": sites, "reduce": reduce}
        if cfg.instrument == "cka":
            out |= _cka(cfg, run, feats, names, reduce, info)
        elif cfg.instrument == "probe":
            out |= _probe(cfg, run, feats, names, labels, info)
        else:
            out |= _spectra(run, feats, names)
    elif cfg.instrument == "calibration":
        out |= _calibration(cfg, run, loaded, batches, info)
    else:
        out |= _lens(cfg, run, loaded, batches, info)
    run.save_json("inspect", info)
    return out


def _cka(cfg, run, feats, names, reduce, info) -> dict[str, Any]:
    other, names_b = None, None
    if cfg.compare is not None:
        second = _load(cfg.compare, cfg)
        names_b, sites_b = ins.layers(second.model, cfg.site)
        batches_b = ins.encode(second.tokenizer, _texts(cfg)[0], cfg.batch_size, cfg.max_length)
        other = ins.activations(second.model, batches_b, sites_b, reduce, cfg.max_bytes, run.track)
        info |= {"compare": _describe(second), "layers_b": names_b}
    res = ins.cka_layers(feats, other, names, names_b, cfg.cka_kind)
    for i in range(len(res.labels_a)):
        for j in range(len(res.labels_b)):
            run.log(i, {"cka": res.matrix[i, j]}, layer=res.labels_a[i], layer_b=res.labels_b[j])
    info["cka"] = res.matrix.tolist()
    M = res.matrix
    if other is None:
        return {
            "cka_adjacent_mean": float(np.mean(np.diag(M, 1))),
            "cka_embed_last": float(M[0, -1]),
            "cka_first_last": float(M[1, -1]),
            "cka_min": float(M.min()),
        }
    best = M.max(axis=1)  # for each layer of A, its most similar layer of B
    out = {"cka_best_match_mean": float(best.mean()), "cka_last_last": float(M[-1, -1])}
    if M.shape[0] == M.shape[1]:
        out["cka_diagonal_mean"] = float(np.mean(np.diag(M)))
    return out


def _probe(cfg, run, feats, names, labels, info) -> dict[str, Any]:
    from fmlab.data import TextData

    ids, classes = TextData(cfg.data, ("",) * len(feats[0]), labels).label_ids(cfg.label)
    results = ins.probe_layers(feats, ids, cfg.seed)
    rows = []
    for i, (name, r) in enumerate(zip(names, results, strict=True)):
        metrics = {
            "probe_acc": r.test_accuracy,
            "probe_acc_ci_low": r.test_accuracy_ci.low,
            "probe_acc_ci_high": r.test_accuracy_ci.high,
            "control_acc": r.control_test_accuracy,
            "selectivity": r.selectivity,
            "train_acc": r.train_accuracy,
        }
        run.log(i, metrics, layer=name)
        rows.append({"layer": name, **metrics})
    info |= {"probe": rows, "label": cfg.label, "classes": classes}
    best = int(np.argmax([r.test_accuracy for r in results]))
    last, embed = results[-1], results[0]
    return {
        "probe_best_layer": best - 1,  # -1 = embed
        "probe_acc_best": results[best].test_accuracy,
        "probe_acc_embed": embed.test_accuracy,
        "probe_acc_last": last.test_accuracy,
        "probe_acc_last_ci_low": last.test_accuracy_ci.low,
        "probe_acc_last_ci_high": last.test_accuracy_ci.high,
        "selectivity_last": last.selectivity,
        "majority_baseline": last.majority_baseline,
        "n_test": last.n_test,
        "n_classes": last.n_classes,
    }


def _spectra(run, feats, names) -> dict[str, Any]:
    summaries = ins.spectra_layers(feats)
    for i, (name, s) in enumerate(zip(names, summaries, strict=True)):
        metrics = {
            "effective_rank": s.effective_rank,
            "participation_ratio": s.participation_ratio,
            "stable_rank": s.stable_rank,
        }
        run.log(i, metrics, layer=name)
    return {
        "effective_rank_embed": summaries[0].effective_rank,
        "effective_rank_last": summaries[-1].effective_rank,
        "participation_ratio_embed": summaries[0].participation_ratio,
        "participation_ratio_last": summaries[-1].participation_ratio,
    }


def _calibration(cfg, run, loaded, batches, info) -> dict[str, Any]:
    from fmlab.measure import reliability_diagram, softmax

    vocab = loaded.model.get_output_embeddings().weight.shape[0]
    max_rows = max(20, cfg.max_bytes // (8 * vocab * 4))  # float64 (N, V), a few copies
    logits, targets = ins.token_logits(loaded.model, loaded.tokenizer, batches, max_rows, cfg.seed)
    res = ins.calibration(logits, targets, cfg.seed)
    diagram = reliability_diagram(softmax(logits.double().numpy()), targets.numpy(), n_bins=10)
    info |= {
        "kind": ins.lm_kind(loaded.model),
        "reliability": {
            "confidence": diagram.confidence.tolist(),
            "accuracy": diagram.accuracy.tolist(),
            "count": diagram.count.tolist(),
        },
    }
    out = {"n_tokens": res["n"], "temperature": res["temperature"]}
    for when in ("before", "after"):
        r = res[when]
        out |= {f"ece_{when}": r.ece, f"nll_{when}": r.nll, f"brier_{when}": r.brier}
    out |= {"accuracy": res["before"].accuracy, "confidence_mean": res["before"].mean_confidence}
    run.log(0, out)
    return out


def _lens(cfg, run, loaded, batches, info) -> dict[str, Any]:
    rows = ins.lens_layers(loaded.model, batches, cfg.site)
    for i, row in enumerate(rows):
        run.log(i, row, layer=str(i))
    info["lens"] = rows
    return {
        "lens_kl_first": rows[0]["kl_final"],
        "lens_agreement_first": rows[0]["agreement"],
        "lens_agreement_last": rows[-1]["agreement"],
        "lens_logprob_last": rows[-1]["target_logprob"],
    }


# ---------------------------------------------------------------------- figures
def figures(run: RunData) -> dict[str, Any]:
    path = run.artifacts / "inspect.json"
    if not path.exists():
        return {}
    info = json.loads(path.read_text())
    model = info["model"]["name"]
    kind = run.config["instrument"]
    if kind == "cka":
        return {"cka": _cka_figure(info, model, run.config)}
    m = run.metrics
    fig, ax = new_figure(width=6.0)
    if kind == "probe":
        x = np.arange(len(info["layers"]))
        acc = np.array([r["probe_acc"] for r in info["probe"]])
        lo = acc - np.array([r["probe_acc_ci_low"] for r in info["probe"]])
        hi = np.array([r["probe_acc_ci_high"] for r in info["probe"]]) - acc
        ax.errorbar(x, acc, yerr=[lo, hi], color=PALETTE[0], marker="o", label="probe (95% CI)")
        ctl = [r["control_acc"] for r in info["probe"]]
        ax.plot(x, ctl, color=PALETTE[1], marker="s", label="control task")
        base = run.summary["metrics"]["majority_baseline"] if run.summary else None
        if base is not None:
            ax.axhline(base, color="#888", ls="--", lw=1, label="majority class")
        ax.set(xticks=x, xticklabels=info["layers"], xlabel="layer", ylabel="held-out accuracy")
        ax.set_title(f"Linear probe for '{info['label']}' on {model}")
    elif kind == "spectra":
        for color, name in zip(PALETTE, ("effective_rank", "participation_ratio"), strict=False):
            rows = m[m["name"] == name].sort_values("step")
            ax.plot(rows["step"], rows["value"], marker="o", color=color, label=name)
        ax.set(xlabel="layer (0 = embed)", ylabel="dimensions", title=f"Spectra of {model}")
    elif kind == "logit-lens":
        rows = info["lens"]
        x = np.arange(len(rows))
        ax.plot(x, [r["agreement"] for r in rows], marker="o", label="top-1 = model's")
        ax.plot(x, [r["accuracy"] for r in rows], marker="s", label="top-1 = next token")
        ax2 = ax.twinx()
        ax2.plot(x, [r["kl_final"] for r in rows], color=PALETTE[2], marker="^", label="KL")
        ax2.set_ylabel("KL(model ‖ lens), nats")
        ax.set(xlabel="block", ylabel="fraction", title=f"Logit lens on {model}")
    else:  # calibration
        rel = info["reliability"]
        ax.plot([0, 1], [0, 1], color="#888", ls="--", lw=1)
        conf, acc = np.array(rel["confidence"], float), np.array(rel["accuracy"], float)
        ax.plot(conf, acc, marker="o", color=PALETTE[0], label="before temperature")
        ax.set(xlabel="confidence", ylabel="accuracy", title=f"Reliability of {model}")
    ax.legend()
    return {kind: styled(fig)}


def _cka_figure(info: dict, model: str, config: dict) -> Any:
    M = np.array(info["cka"], dtype=float)
    la, lb = info["layers"], info.get("layers_b", info["layers"])
    fig, ax = new_figure(width=5.6, height=4.6)
    im = ax.imshow(M, vmin=0, vmax=1, cmap="viridis", origin="lower")
    ax.set(xticks=range(len(lb)), xticklabels=lb, yticks=range(len(la)), yticklabels=la)
    ax.grid(False)
    other = info.get("compare", {}).get("name")
    ax.set(xlabel=f"layer of {other or model}", ylabel=f"layer of {model}")
    ax.set_title(f"{config['cka_kind']} CKA, {info['reduce']} rows ({model})")
    fig.colorbar(im, ax=ax, shrink=0.85)
    return styled(fig)
