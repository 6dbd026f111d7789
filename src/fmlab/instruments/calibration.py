"""``calibration``: ECE, Brier and NLL of the LM head's token predictions, before and
after temperature scaling fitted on held-out tokens (Guo et al. 2017)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fmlab.errors import UserInputError
from fmlab.instruments.base import Inspection, instrument, lm_kind

if TYPE_CHECKING:
    from torch import Tensor


def _targets(model, tokenizer, batch: dict, seed: int) -> tuple[dict, Tensor, Tensor]:
    """Inputs to run, target ids (B, T) and the mask (B, T) of scored positions."""
    import torch

    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    if lm_kind(model) == "causal":
        targets = torch.roll(ids, -1, dims=1)
        keep = mask & torch.roll(mask, -1, dims=1)
        keep[:, -1] = False  # the last position has no next token in the batch
        return batch, targets, keep
    mask_id = getattr(tokenizer, "mask_token_id", None)
    if mask_id is None:
        raise UserInputError("masked-LM calibration needs a tokenizer with a mask token")
    g = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(ids.shape, generator=g) < 0.15) & mask  # BERT's 15 % (Devlin 2019)
    for special in set(getattr(tokenizer, "all_special_ids", [])):
        chosen &= ids != special
    return {**batch, "input_ids": ids.masked_fill(chosen, mask_id)}, ids, chosen


def token_logits(
    model, tokenizer, batches: list[dict], max_rows: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Logits (N, V) and targets (N,) of the scored positions, at most ``max_rows``."""
    import torch

    with torch.no_grad():
        return _token_logits(model, tokenizer, batches, max_rows, seed)


def _token_logits(model, tokenizer, batches, max_rows: int, seed: int) -> tuple[Tensor, Tensor]:
    import torch

    from fmlab.hooks import capture

    rows, ys, n = [], [], 0
    for batch in batches:
        inputs, targets, keep = _targets(model, tokenizer, batch, seed + n)
        logits = capture(model, inputs, ["logits"])["logits"]
        rows.append(logits[keep].float().cpu())
        ys.append(targets[keep].cpu())
        n += int(keep.sum())
        if n >= max_rows:
            break
    return torch.cat(rows)[:max_rows], torch.cat(ys)[:max_rows]


def calibrate(logits: Tensor, targets: Tensor, seed: int) -> dict[str, Any]:
    """Calibration of token predictions, and temperature scaling fitted on one random half
    of the tokens and evaluated on the other."""
    from fmlab.measure import apply_temperature, calibration_report, fit_temperature, softmax

    n = len(targets)
    if n < 20:
        raise UserInputError(f"only {n} scored tokens: give more or longer texts")
    perm = np.random.default_rng(seed).permutation(n)
    fit, held = perm[: n // 2], perm[n // 2 :]
    Z, y = logits.double().numpy(), targets.numpy()
    temp = fit_temperature(Z[fit], y[fit])
    before = calibration_report(softmax(Z[held]), y[held])
    after = calibration_report(apply_temperature(Z[held], temp.temperature), y[held])
    return {"before": before, "after": after, "temperature": temp.temperature, "n": n}


def calibration_figure(run: Any, info: dict[str, Any]) -> Any:
    from fmlab.report.figures import PALETTE, new_figure, styled

    rel = info["reliability"]
    fig, ax = new_figure(width=6.0)
    ax.plot([0, 1], [0, 1], color="#888", ls="--", lw=1)
    conf, acc = np.array(rel["confidence"], float), np.array(rel["accuracy"], float)
    ax.plot(conf, acc, marker="o", color=PALETTE[0], label="before temperature")
    ax.set(xlabel="confidence", ylabel="accuracy", title=f"Reliability of {info['model']['name']}")
    ax.legend()
    return styled(fig)


@instrument(
    "calibration",
    help="ECE/Brier/NLL of the LM head's token predictions, and temperature scaling",
    figure=calibration_figure,
)
def calibration(ins: Inspection, run: Any) -> dict[str, Any]:
    from fmlab.measure import reliability_diagram, softmax

    model, cfg = ins.model, ins.cfg
    vocab = model.get_output_embeddings().weight.shape[0]
    max_rows = max(20, cfg.max_bytes // (8 * vocab * 4))  # float64 (N, V), a few copies
    logits, targets = token_logits(model, ins.loaded.tokenizer, ins.batches, max_rows, cfg.seed)
    res = calibrate(logits, targets, cfg.seed)
    diagram = reliability_diagram(softmax(logits.double().numpy()), targets.numpy(), n_bins=10)
    ins.info |= {
        "kind": lm_kind(model),
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
