"""A self-contained HTML page showing a detection token by token: green and red tokens
(KGW), shades by score (Gumbel, SynthID), grey for what was not scored (the prompt, the
first tokens without a full context, repeated n-grams)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from fmlab.watermark.detect import Detection

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; }
.text { font-family: ui-monospace, monospace; line-height: 1.9; white-space: pre-wrap; }
.text span { border-radius: 3px; padding: 1px 0; }
.off { color: #888; }
table { border-collapse: collapse; margin: 1rem 0; }
td { padding: 2px 10px; border-bottom: 1px solid #ddd; }
.legend span { padding: 2px 6px; margin-right: 8px; border-radius: 3px; }
"""


def _colour(scheme: str, value: float) -> str:
    if scheme == "kgw":
        return "#b7e4b0" if value > 0.5 else "#f4b6b6"
    if scheme == "gumbel":  # -log(1 - r): mean 1 without a watermark
        strength = max(0.0, min(1.0, (value - 1.0) / 3.0))
    else:  # SynthID: mean g over layers, 1/2 without a watermark
        strength = max(0.0, min(1.0, (value - 0.5) * 2.0))
    if strength == 0 and value < (1.0 if scheme == "gumbel" else 0.5):
        return "#f4d6d6"
    shade = int(235 - 110 * strength)
    return f"rgb({shade},235,{shade})"


def detection_html(
    det: Detection, pieces: Sequence[str], title: str = "watermark detection"
) -> str:
    """The page for ``det``; ``pieces`` are the decoded tokens, one per position."""
    if len(pieces) != len(det.per_token):
        raise ValueError(f"{len(pieces)} token strings for {len(det.per_token)} positions")
    spans = []
    for piece, value in zip(pieces, det.per_token, strict=True):
        text = html.escape(piece)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            spans.append(f'<span class="off">{text}</span>')
        else:
            spans.append(
                f'<span style="background:{_colour(det.scheme, value)}" '
                f'title="{value:.3g}">{text}</span>'
            )
    rows = [
        ("scheme", det.scheme),
        ("tokens / scored", f"{det.n_tokens} / {det.n_scored}"),
        ("statistic (expected without watermark)", f"{det.statistic:.4g} ({det.expected:.4g})"),
        ("z", f"{det.z:.3f}"),
        ("p (exact) / p (normal)", f"{det.p_value:.3g} / {det.p_normal:.3g}"),
        ("verdict", det.verdict()),
    ]
    table = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)
    legend = (
        '<p class="legend"><span style="background:#b7e4b0">green</span>'
        '<span style="background:#f4b6b6">red</span><span class="off">not scored</span></p>'
        if det.scheme == "kgw"
        else '<p class="legend">darker green: more watermark evidence in that token; '
        '<span class="off">grey: not scored</span></p>'
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<table>{table}</table>{legend}<div class='text'>{''.join(spans)}</div></body></html>"
    )
