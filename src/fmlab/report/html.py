"""Self-contained HTML reports: one page per run, and an index over many runs.

Pages carry their figures inline (base64 PNG) and their CSS in a ``<style>`` block,
with no external URL, so a report can be mailed, archived or opened offline. The
figures are also written as PNG and SVG under ``artifacts/figures/`` for papers.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from fmlab.claims import reason, shown_ci
from fmlab.contracts import CorruptFileError
from fmlab.report.figures import close, keep_legends_off_data, png_bytes, save_figure
from fmlab.stats.bounds import clip_interval, interval_bounds
from fmlab.stats.seeds import BY_SEED, CI_HIGH, CI_LOW, SUFFIXES
from fmlab.store import RunData, atomic_write_bytes, skip

CSS = """
body{font:14px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2329;
background:#f6f7f9}
main{max-width:1320px;margin:0 auto;padding:24px;box-sizing:border-box}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;
padding-bottom:4px}
.sub{color:#5b6570}.why{color:#8a3b12}.card{background:#fff;border:1px solid #e2e5ea;
border-radius:8px;padding:14px;margin:10px 0;min-width:0}
.tw{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:6px 8px;
border-bottom:1px solid #eceef2;vertical-align:top;overflow-wrap:break-word}
th{background:#f0f2f5;font-weight:600;white-space:nowrap}td.v{white-space:nowrap}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
td.seeds{font-variant-numeric:tabular-nums;font-size:12px;color:#4b5563;min-width:8em}
td.name{min-width:10em;overflow-wrap:anywhere}
.pass{color:#0a7a32;font-weight:600}.fail{color:#b3261e;font-weight:600}.na{color:#6b7280}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.completed{background:#dff5e5;color:#0a7a32}.diverged{background:#fff1d6;color:#8a5a00}
.failed{background:#fde2e1;color:#b3261e}.unfinished{background:#eceef2;color:#4b5563}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs figure{margin:0;background:#fff;border:1px solid
#e2e5ea;border-radius:8px;padding:8px;flex:1 1 460px;min-width:0;box-sizing:border-box}
.figs figure.wide{flex-basis:100%}
.figs img{display:block;width:100%;height:auto;margin:0 auto}
figcaption{font-size:12px;color:#5b6570}pre{background:#fff;border:1px solid #e2e5ea;padding:10px;
border-radius:8px;overflow:auto;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
a{color:#1f5fbf}code{overflow-wrap:anywhere}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def fmt(value: Any) -> str:
    """Numbers to 4 significant digits; None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return html.escape(str(value))


def claims_table(claims: list[Mapping[str, Any]]) -> str:
    if not claims:
        return "<p class='na'>This study states no claims.</p>"
    rows = []
    for c in claims:
        verdict = {
            True: "<span class='pass'>holds</span>",
            False: "<span class='fail'>fails</span>",
        }
        ci = (
            f" <span class='sub'>[{fmt(shown_ci(c)[0])}, {fmt(shown_ci(c)[1])}]</span>"
            if shown_ci(c)
            else ""
        )
        why = reason(c)  # a failing or n/a claim always says why
        style = "why" if c.get("passed") is not True else "sub"
        note = f"<br><span class='{style}'>{html.escape(why)}</span>" if why else ""
        rows.append(
            f"<tr><td class='v'>{verdict.get(c.get('passed'), '<span class=na>n/a</span>')}</td>"
            f"<td><b>{html.escape(c['id'])}</b><br>{html.escape(c['statement'])}{note}</td>"
            f"<td>{html.escape(c['source'])}</td>"
            f"<td class='name'>{breakable(str(c.get('metric')))}</td>"
            f"<td class='num'>{fmt(c.get('value'))}{ci}</td>"
            f"<td class='num'>{html.escape(c['threshold'])}</td></tr>"
        )
    head = "<tr><th></th><th>claim</th><th>source</th><th>metric</th><th>measured [95% CI]</th>"
    return f"<div class='tw'><table>{head}<th>threshold</th></tr>{''.join(rows)}</table></div>"


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """One row per quantity: value, its 95 % CI and per-seed values when present."""
    rows = []
    for key, value in metrics.items():
        if key.endswith(SUFFIXES):
            continue
        low, high = metrics.get(f"{key}{CI_LOW}"), metrics.get(f"{key}{CI_HIGH}")
        low, high = clip_interval(low, high, interval_bounds(key, [value]))
        ci = f"[{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""
        per_seed = metrics.get(f"{key}{BY_SEED}")
        seeds = fmt(per_seed) if isinstance(per_seed, list) and len(per_seed) > 1 else ""
        rows.append(
            f"<tr><td class='name'>{breakable(key)}</td>"
            f"<td class='{'seeds' if isinstance(value, list) else 'num'}'>{fmt(value)}</td>"
            f"<td class='num'>{ci}</td><td class='seeds'>{seeds}</td></tr>"
        )
    head = "<tr><th>metric</th><th>value</th><th>95% CI</th><th>per seed</th></tr>"
    return f"<div class='tw'><table>{head}{''.join(rows)}</table></div>"


def breakable(name: str) -> str:
    """A long identifier (``lp_ft_ood_acc_minus_ft``) that may wrap after its ``_``/``.``."""
    text = html.escape(name)
    return text.replace("_", "_<wbr>").replace(".", ".<wbr>")


class ReportSource(Protocol):
    """What a report needs of a study (a :class:`fmlab.study.Study` has it): its title,
    citation, and the function that draws a run's figures (``None``: no figures)."""

    title: str
    citation: str
    figures: Callable[[RunData], Mapping[str, Any]] | None


def render_figures(run: RunData, figures: Callable[[RunData], Mapping[str, Any]] | None):
    """Call ``figures`` on the run; save PNG+SVG; return (name, png) pairs."""
    if figures is None or run.metrics.empty:
        return []
    out = []
    for name, fig in figures(run).items():
        keep_legends_off_data(fig)
        save_figure(fig, run.artifacts / "figures", name)
        out.append((name, png_bytes(fig)))
        close(fig)
    return out


# A figure wider than this (PNG pixels at the figures' 110 dpi: two panels, or one with its
# legend outside) gets the page's full width: in a half-width card (~610 px at a 1400 px
# window) its 8 pt legend would shrink to ~7 px. At most this wide, text keeps >= 75 %.
WIDE_PX = 800


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        return 0, 0
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def figures_html(figs: Iterable[tuple[str, bytes]]) -> str:
    """The figures as cards: two to a row, and a wide one (several panels) alone in its
    row at the page's width; the wide ones come after the others, so that no half-width
    figure is left alone in a row between them."""
    small, wide = [], []
    for n, png in figs:
        width, _ = png_size(png)
        # never drawn larger than its own pixels (a small figure is not blown up)
        cap = f" style='max-width:{width}px'" if width else ""
        item = (
            f"<img{cap} alt='{html.escape(n)}' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode()}'><figcaption>{html.escape(n)}</figcaption>"
        )
        if width > WIDE_PX:
            wide.append(f"<figure class='wide'>{item}</figure>")
        else:
            small.append(f"<figure>{item}</figure>")
    items = small + wide
    return f"<div class='figs'>{''.join(items)}</div>" if items else "<p class='na'>No figures.</p>"


def run_report_html(run: RunData, study: ReportSource | None = None) -> str:
    """The run's page; ``study`` gives its title, citation and figures (without one the
    page has the run's own numbers only)."""
    title = study.title if study is not None else run.study
    citation = study.citation if study is not None else ""
    summary = run.summary or {"status": "unfinished", "metrics": {}, "claims": []}
    status = summary.get("status", "unfinished")
    passed = sum(c.get("passed") is True for c in summary.get("claims", []))
    tested = sum(c.get("passed") is not None for c in summary.get("claims", []))
    preset = summary.get("preset")
    run_id = html.escape(run.run_id)
    head = (
        f"<h1>{html.escape(title)}</h1><div class='sub'>study <b>{html.escape(run.study)}</b>"
        f"{f' · preset <b>{html.escape(preset)}</b>' if preset else ''} · run <code>{run_id}"
        f"</code> · {_badge(status)} · {fmt(summary.get('wall_s'))} s"
        f" · claims {passed}/{tested} hold</div>"
        + (f"<div class='card sub'>{html.escape(citation)}</div>" if citation else "")
    )
    parts = [head, "<h2>Claims</h2>", claims_table(summary.get("claims", []))]
    try:
        figs = render_figures(run, study.figures if study is not None else None)
        drawn = figures_html(figs)
    except Exception as e:  # a study's own figure code (a user's study): the rest is written
        import warnings

        from fmlab.errors import FmlabWarning

        why = f"{type(e).__name__}: {e}".splitlines()[0]
        warnings.warn(
            f"the figures of {run.study} failed for {run.path} ({why}); "
            "writing the report without them",
            FmlabWarning,
            stacklevel=2,
        )
        drawn = f"<p class='why'>The study's figures failed: {html.escape(why)}</p>"
    parts += ["<h2>Figures</h2>", drawn]
    parts += ["<h2>Summary metrics</h2>", metrics_table(summary.get("metrics", {}))]
    if summary.get("error"):
        parts += ["<h2>Error</h2>", f"<pre>{html.escape(summary['error'])}</pre>"]
    parts += ["<h2>Config</h2>", f"<pre>{html.escape(json.dumps(run.config, indent=2))}</pre>"]
    parts += [
        "<h2>Environment</h2>",
        f"<pre>{html.escape(json.dumps(summary.get('env', {})))}</pre>",
    ]
    return _page(f"{run.study} {run.run_id}", "".join(parts))


def _badge(status: Any) -> str:
    text = html.escape(str(status))
    known = status in ("completed", "diverged", "failed", "unfinished", "running")
    return f"<span class='badge {text if known else 'unfinished'}'>{text}</span>"


def write_run_report(run_dir: Path, study: ReportSource | None = None) -> Path:
    """Write ``run_dir/report.html`` (and the figures ``study`` draws); return its path."""
    run = RunData(run_dir)
    target = run.path / "report.html"
    atomic_write_bytes(target, run_report_html(run, study).encode())
    return target


def write_index(run_dirs: Iterable[Path], target: Path, title: str = "fmlab report") -> Path:
    """An index page of many runs: status and claims of each, linking their reports."""
    target = Path(target)
    sections, total, held = [], 0, 0
    for run_dir in run_dirs:
        try:
            run = RunData(run_dir)
        except CorruptFileError as e:
            skip(e, "leaving it out of the index")
            continue
        summary = run.summary or {"status": "unfinished", "claims": []}
        report = run.path / "report.html"
        link = os.path.relpath(report, target.parent) if report.exists() else None
        claims = summary.get("claims", [])
        total += sum(c.get("passed") is not None for c in claims)
        held += sum(c.get("passed") is True for c in claims)
        status = summary.get("status", "unfinished")
        name = html.escape(f"{run.study} · {summary.get('preset') or run.run_id}")
        anchor = f"<a href='{html.escape(link)}'>{name}</a>" if link else name
        sections.append(
            f"<div class='card'><b>{anchor}</b> {_badge(status)} "
            f"<span class='sub'>{fmt(summary.get('wall_s'))} s · "
            f"run {html.escape(run.run_id)}</span>"
            f"{claims_table(claims)}</div>"
        )
    body = (
        f"<h1>{html.escape(title)}</h1><div class='sub'>{held} of {total} claims hold "
        f"across {len(sections)} runs</div>{''.join(sections)}"
    )
    atomic_write_bytes(target, _page(title, body).encode())
    return target
