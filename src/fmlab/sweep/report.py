"""The sweep page: status, the mean ± CI table, metric-vs-key figures, links to runs.

Written by ``fmlab report SWEEP_DIR`` as ``SWEEP_DIR/sweep.html`` (self-contained, like
the run reports), with its figures also saved as PNG and SVG under ``SWEEP_DIR/figures``.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from fmlab.report.figures import close, png_bytes, save_figure
from fmlab.report.html import CSS, figures_html
from fmlab.store import atomic_write_bytes
from fmlab.sweep.figures import sweep_figures
from fmlab.sweep.record import read_record
from fmlab.sweep.tables import default_by, sweep_status, sweep_table, wide_table

PAGE = "sweep.html"


def _table_html(directory: Path, keys: list[str]) -> str:
    long = sweep_table(directory, by=keys)
    if long.empty:
        return "<p class='na'>No finished runs yet.</p>"
    wide = wide_table(long, keys)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in wide.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td class='num'>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in wide.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _runs_html(directory: Path, target: Path) -> str:
    status = sweep_status(directory)
    record = read_record(directory)
    values = {r["run_id"]: r["values"] for r in record["runs"]}
    rows = []
    for run in status.runs:
        report = directory / status.study / run.run_id / "report.html"
        name = html.escape(run.run_id)
        if report.exists():
            name = f"<a href='{html.escape(os.path.relpath(report, target.parent))}'>{name}</a>"
        shown = html.escape(json.dumps(values.get(run.run_id, {})))
        rows.append(
            f"<tr><td>{name}</td><td><span class='badge {run.state}'>{run.state}</span></td>"
            f"<td><code>{shown}</code></td></tr>"
        )
    head = "<tr><th>run</th><th>status</th><th>swept values</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def write_sweep_report(directory: Path) -> Path:
    """Write ``directory/sweep.html`` (and its figures); return its path."""
    directory = Path(directory)
    record = read_record(directory)
    status = sweep_status(directory)
    target = directory / PAGE
    keys = default_by(record)
    figs = []
    for name, fig in sweep_figures(directory).items():
        save_figure(fig, directory / "figures", name)
        figs.append((name, png_bytes(fig)))
        close(fig)
    c = status.counts
    counts = " · ".join(
        f"{k} {c[k]}" for k in ("completed", "diverged", "failed", "running", "pending")
    )
    spec = html.escape(json.dumps(record["spec"], indent=2))
    body = (
        f"<h1>Sweep {html.escape(record['name'])}</h1>"
        f"<div class='sub'>study <b>{html.escape(record['study'])}</b> · preset "
        f"<b>{html.escape(record['spec'].get('preset', ''))}</b> · {status.total} runs · "
        f"{counts}</div>"
        f"<h2>Results (mean ± 95% CI over seeds)</h2>{_table_html(directory, keys)}"
        f"<h2>Figures</h2>{figures_html(figs)}"
        f"<h2>Runs</h2>{_runs_html(directory, target)}"
        f"<h2>Spec</h2><pre>{spec}</pre>"
    )
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>sweep {html.escape(record['name'])}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    atomic_write_bytes(target, page.encode())
    return target
