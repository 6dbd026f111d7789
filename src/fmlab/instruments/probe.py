"""``probe``: a linear probe per layer for a label of the texts, with a control task
(Hewitt & Liang 2019): accuracy, its CI, and selectivity over the control."""

from __future__ import annotations

from typing import Any

import numpy as np

from fmlab.instruments.base import Inspection, instrument


def check_label(cfg: Any, data: Any) -> None:
    data.label_ids(cfg.label)  # an unknown label is refused, naming the known ones


def probe_figure(run: Any, info: dict[str, Any]) -> Any:
    from fmlab.report.figures import PALETTE, new_figure, styled

    fig, ax = new_figure(width=6.0)
    x = np.arange(len(info["layers"]))
    acc = np.array([r["probe_acc"] for r in info["probe"]])
    lo = acc - np.array([r["probe_acc_ci_low"] for r in info["probe"]])
    hi = np.array([r["probe_acc_ci_high"] for r in info["probe"]]) - acc
    ax.errorbar(x, acc, yerr=[lo, hi], color=PALETTE[0], marker="o", label="probe (95% CI)")
    ctl = [r["control_acc"] for r in info["probe"]]
    ax.plot(x, ctl, color=PALETTE[1], marker="s", label="control task")
    base = (run.summary or {}).get("metrics", {}).get("majority_baseline")
    if base is not None:
        ax.axhline(base, color="#888", ls="--", lw=1, label="majority class")
    ax.set(xticks=x, xticklabels=info["layers"], xlabel="layer", ylabel="held-out accuracy")
    ax.set_title(f"Linear probe for '{info['label']}' on {info['model']['name']}")
    ax.legend()
    return styled(fig)


@instrument(
    "probe",
    help="linear probe per layer for a label of the texts, with a control task",
    figure=probe_figure,
    reduce="mean",
    check=check_label,
)
def probe(ins: Inspection, run: Any) -> dict[str, Any]:
    from fmlab.data import TextData
    from fmlab.measure import linear_probe

    acts = ins.layer_activations()
    n = len(acts.tensors[0])
    ids, classes = TextData(ins.cfg.data, ("",) * n, ins.labels).label_ids(ins.cfg.label)
    results = [linear_probe(f, np.asarray(ids), seed=ins.cfg.seed) for f in acts.tensors]
    rows = []
    for i, (name, r) in enumerate(zip(acts.labels, results, strict=True)):
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
    ins.info |= {"probe": rows, "label": ins.cfg.label, "classes": classes}
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
