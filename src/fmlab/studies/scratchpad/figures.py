"""Figures of a ``scratchpad`` run, read from ``artifacts/scratchpad.json``: the
sample-efficiency curves (exact match against dataset size, one line per format, with
the sigmoid fit and the 90 % level) and, at the largest dataset, exact match on longer
operands and without the scratchpad."""

from __future__ import annotations

import json

import numpy as np
from matplotlib.ticker import NullFormatter

from fmlab.report.figures import PALETTE, new_figure, styled
from fmlab.store import RunData

COLORS = {"plain": PALETTE[0], "reversed": PALETTE[1], "scratchpad": PALETTE[2]}


def figures(run: RunData) -> dict[str, object]:
    path = run.artifacts / "scratchpad.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    out = {}
    for op, a in data["ops"].items():
        out[f"sample_efficiency_{op}"] = _curves(op, a, data["sizes"], data["level"])
        out[f"longer_and_ablation_{op}"] = _bars(op, a)
    return out


def _curves(op: str, a: dict, sizes: list[int], level: float):
    fig, ax = new_figure()
    x = np.asarray(sizes, float)
    for fmt, f in a["formats"].items():
        acc = np.asarray(f["test"])  # (seeds, sizes)
        mean = acc.mean(0)
        c = COLORS.get(fmt, PALETTE[3])
        n90 = f["n90"]
        label = f"{fmt}: N90 " + (f"{n90:,.0f}" if n90 else "not reached")
        ax.plot(x, mean, "o-", color=c, label=label)
        if len(acc) > 1:
            ax.fill_between(x, acc.min(0), acc.max(0), color=c, alpha=0.15, lw=0)
        fit = f.get("fit")
        if fit:
            z = np.geomspace(x[0], x[-1], 200)
            s = 0.5 * (1 + np.tanh(0.5 * (np.log(z) - np.log(fit["t0"])) / _w(fit)))
            ax.plot(z, fit["lo"] + (fit["hi"] - fit["lo"]) * s, "--", color=c, lw=0.8)
    ax.axhline(level, color="0.5", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training problems (dataset size)")
    ax.set_ylabel("exact match (greedy, held-out)")
    ax.set_title(f"{op}: samples to reach exact match (band: seeds' range; dashed: sigmoid fit)")
    ax.legend(fontsize=8)
    return styled(fig)


def _w(fit: dict) -> float:
    """The sigmoid's width in log units from its 10 %-90 % span (span = exp(2 w ln 9))."""
    return np.log(fit["span"]) / (2 * np.log(9))


def _bars(op: str, a: dict):
    fig, ax = new_figure()
    names, values, errs, colors = [], [], [], []
    for fmt, f in a["formats"].items():
        c = COLORS.get(fmt, PALETTE[3])
        for label, key in (
            ("held-out", "test"),
            ("+1 digit", "longer"),
            ("no scratch", "ablation"),
        ):
            if key not in f:
                continue
            col = np.asarray(f[key])[:, -1]
            names.append(f"{fmt}\n{label}")
            values.append(col.mean())
            errs.append(col.std(ddof=1) if len(col) > 1 else 0.0)
            colors.append(c)
    ax.bar(range(len(names)), values, yerr=errs, color=colors, capsize=3)
    ax.set_xticks(range(len(names)), names, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("exact match at the largest dataset")
    ax.set_title(f"{op}: longer operands and the scratchpad ablation (bars: mean, ±1 sd)")
    return styled(fig)
