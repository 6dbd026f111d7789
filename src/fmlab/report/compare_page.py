"""The page of ``fmlab compare``: a :class:`~fmlab.report.compare.Comparison` as one
self-contained HTML page (runs, config differences, metrics with paired differences,
claims side by side, overlaid curves)."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fmlab.report.compare import Comparison, compare_runs, curve_figure
from fmlab.report.figures import close, keep_legends_off_data, png_bytes
from fmlab.report.html import _badge, _page, breakable, figures_html, fmt
from fmlab.store import atomic_write_bytes

__all__ = ["compare_html", "write_comparison"]

MAX_CURVES = 12  # panels on the page; the rest are named under them


def _ci(low: Any, high: Any) -> str:
    return (
        f" <span class='sub'>[{fmt(low)}, {fmt(high)}]</span>"
        if low is not None and high is not None
        else ""
    )


def _how(d: dict[str, Any]) -> str:
    if d["paired"]:
        return f"paired, {d['n']} seed{'s' * (d['n'] != 1)}"
    return "unpaired: no seeds match"


def _diff_cell(d: dict[str, Any] | None, shared: str | None) -> str:
    """A difference to A; how it was paired is said in the cell unless the whole column
    shares it (then the header says it once)."""
    if d is None:
        return "<td class='num'>–</td>"
    sign = "+" if d["estimate"] > 0 else ""
    how = "" if shared else f"<br><span class='sub'>{_how(d)}</span>"
    return f"<td class='num'>{sign}{fmt(d['estimate'])}{_ci(d['low'], d['high'])}{how}</td>"


def _shared_how(comp: Comparison, column: int) -> str | None:
    hows = {_how(m["diffs"][column]) for m in comp.metrics if m["diffs"][column] is not None}
    return hows.pop() if len(hows) == 1 else None


def _verdict(result: dict[str, Any] | None) -> str:
    if result is None:
        return "<td class='na'>not stated</td>"
    mark = {True: "<span class='pass'>holds</span>", False: "<span class='fail'>fails</span>"}
    ci = _ci(*result["ci"]) if result.get("ci") else ""
    why = (
        f"<br><span class='{'sub' if result['passed'] else 'why'}'>"
        f"{html.escape(result['reason'])}</span>"
        if result["reason"]
        else ""
    )
    return (
        f"<td>{mark.get(result['passed'], '<span class=na>n/a</span>')} "
        f"<span class='num'>{fmt(result['value'])}</span>{ci}{why}</td>"
    )


def _value(v: Any) -> str:
    if isinstance(v, list | dict):
        return html.escape(json.dumps(v))
    return fmt(v)


def compare_html(comp: Comparison, target: Path) -> str:
    """The page (links to the runs' reports are relative to ``target``)."""
    heads = "".join(f"<th>{x}</th>" for x in comp.labels)
    runs = []
    for label, r in zip(comp.labels, comp.runs, strict=True):
        s = r.summary or {}
        report = r.path / "report.html"
        rel = os.path.relpath(report, Path(target).parent)
        name = f"{html.escape(r.study)} · <code>{html.escape(r.run_id)}</code>"
        link = f"<a href='{html.escape(rel)}'>{name}</a>" if report.exists() else name
        runs.append(
            f"<tr><td><b>{label}</b></td><td>{link}</td>"
            f"<td>{html.escape(str(s.get('preset') or '–'))}</td>"
            f"<td>{_badge(s.get('status', 'unfinished'))}</td>"
            f"<td>{breakable(str(r.path))}</td></tr>"
        )
    parts = [
        f"<h1>Comparing {len(comp.runs)} runs</h1><div class='sub'>{html.escape(_title(comp))}"
        f" · differences are to run A, paired over matching seeds</div>",
        "<h2>Runs</h2><div class='tw'><table><tr><th></th><th>run</th><th>preset</th>"
        f"<th>status</th><th>directory</th></tr>{''.join(runs)}</table></div>",
        "<h2>Config differences</h2>",
    ]
    if comp.config_diff:
        rows = "".join(
            f"<tr><td class='name'>{breakable(d['key'])}</td>"
            + "".join(f"<td>{_value(v)}</td>" for v in d["values"])
            + "</tr>"
            for d in comp.config_diff
        )
        parts.append(f"<div class='tw'><table><tr><th>key</th>{heads}</tr>{rows}</table></div>")
    else:
        parts.append("<p class='na'>The configs are identical.</p>")
    shared = [_shared_how(comp, i) for i in range(len(comp.labels) - 1)]
    diff_heads = "".join(
        f"<th>{x} − A [95% CI]" + (f"<br><span class='sub'>{how}</span>" if how else "") + "</th>"
        for x, how in zip(comp.labels[1:], shared, strict=True)
    )
    rows = "".join(
        f"<tr><td class='name'>{breakable(m['metric'])}</td>"
        + "".join(
            f"<td class='num'>{fmt(c['value'])}{_ci(c['low'], c['high'])}</td>" for c in m["runs"]
        )
        + "".join(_diff_cell(d, how) for d, how in zip(m["diffs"], shared, strict=True))
        + "</tr>"
        for m in comp.metrics
    )
    parts += [
        "<h2>Summary metrics</h2>",
        f"<div class='tw'><table><tr><th>metric</th>{heads}{diff_heads}</tr>{rows}</table></div>"
        if comp.metrics
        else "<p class='na'>No summary metrics.</p>",
    ]
    rows = "".join(
        f"<tr><td><b>{html.escape(c['id'])}</b><br><span class='sub'>"
        f"{html.escape(c['statement'])} ({html.escape(c['source'])})</span></td>"
        f"<td class='num'>{html.escape(c['threshold'])}</td>"
        + "".join(_verdict(r) for r in c["runs"])
        + "</tr>"
        for c in comp.claims
    )
    parts += [
        "<h2>Claims</h2>",
        f"<div class='tw'><table><tr><th>claim</th><th>threshold</th>{heads}</tr>{rows}"
        "</table></div>"
        if comp.claims
        else "<p class='na'>No claims.</p>",
    ]
    parts += ["<h2>Curves</h2>", _curves_html(comp)]
    return _page(f"fmlab compare {' '.join(r.run_id for r in comp.runs)}", "".join(parts))


def _title(comp: Comparison) -> str:
    studies = list(dict.fromkeys(r.study for r in comp.runs))
    return f"study {studies[0]}" if len(studies) == 1 else f"studies {', '.join(studies)}"


def _curves_html(comp: Comparison) -> str:
    shown, rest = comp.curves[:MAX_CURVES], comp.curves[MAX_CURVES:]
    figs = []
    for name in shown:
        fig = keep_legends_off_data(curve_figure(comp, name))
        figs.append((name, png_bytes(fig)))
        close(fig)
    more = (
        f"<p class='sub'>Also logged, not drawn: {html.escape(', '.join(rest))}</p>" if rest else ""
    )
    return figures_html(figs) + more if figs else "<p class='na'>No curves in common.</p>"


def write_comparison(paths: Sequence[Path], target: Path) -> tuple[Comparison, Path]:
    """Compare the runs and write the page to ``target``."""
    comp = compare_runs(paths)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, compare_html(comp, target).encode())
    return comp, target
