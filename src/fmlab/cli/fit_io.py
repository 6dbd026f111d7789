"""Reading a CSV of runs and writing a fit's results, for ``fmlab fit``.

Input: :func:`checked_table` reads the columns a command needs and checks them (errors name
the rows or columns). Output: :func:`finish` writes ``fit.json``, PNG + SVG figures and a
small self-contained ``report.html``, and prints a table or JSON.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from fmlab.cli.app import emit_json, out, plain, warn
from fmlab.errors import UserInputError

# ---- input ----------------------------------------------------------------------------------


def read_table(path: Path) -> pd.DataFrame:
    """The CSV with rows labelled 1, 2, … (data rows after the header), as errors name them."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (or is not a file)")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserInputError(f"cannot read {path} as CSV: {e}") from None
    df.index = pd.RangeIndex(1, len(df) + 1)
    return df


def _non_numeric(df: pd.DataFrame, cols: list[str]) -> None:
    """Name the rows whose entries in ``cols`` are text rather than numbers."""
    for c in cols:
        if c in df.columns and not pd.api.types.is_numeric_dtype(df[c]):
            coerced = pd.to_numeric(df[c], errors="coerce")
            bad = df.index[coerced.isna() & df[c].notna()].tolist()
            if bad:
                shown = ", ".join(map(str, bad[:20])) + (" …" if len(bad) > 20 else "")
                raise UserInputError(f"column {c!r} is not numeric at rows [{shown}]")


def checked_table(path: Path, cols: dict[str, str]) -> tuple[pd.DataFrame, list[int]]:
    """Validated columns (renamed to the roles in ``cols``) and the labels of dropped rows."""
    from fmlab.fit import validate_scaling_table

    df = read_table(path)
    names = list(cols.values())
    if len(set(names)) < len(names):
        raise UserInputError(f"the same column is given for two roles: {cols}")
    _non_numeric(df, names)
    try:
        clean = validate_scaling_table(df, names)
    except ValueError as e:
        raise UserInputError(f"{path}: {e} (rows are numbered from 1, after the header)") from None
    dropped = [int(i) for i in df.index.difference(clean.index)]
    table = clean[names].rename(columns={v: k for k, v in cols.items()})
    return table, dropped


@contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """Record every warning raised inside (validation, fit diagnostics) as a message."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    messages.extend(dict.fromkeys(str(w.message) for w in caught))


def ci_pair(ci: Any) -> list[float | None]:
    return [_num(ci.low), _num(ci.high)]


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# ---- output ---------------------------------------------------------------------------------


def default_out(data: Path, kind: str) -> Path:
    return data.parent / f"{data.stem}_{kind}_fit"


def write_outputs(
    result: dict[str, Any], figures: dict[str, Any], out_dir: Path, title: str
) -> dict[str, Any]:
    """fit.json, each figure as PNG + SVG, and report.html embedding them; returns the paths."""
    from fmlab.report.figures import close, png_bytes, save_figure
    from fmlab.report.html import CSS, figures_html
    from fmlab.store import atomic_write_bytes, atomic_write_json, json_safe

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Any] = {"json": str(out_dir / "fit.json"), "figures": {}}
    pngs = []
    for name, fig in figures.items():
        saved = save_figure(fig, out_dir, name)
        paths["figures"][name] = {k: str(v) for k, v in saved.items()}
        pngs.append((name, png_bytes(fig)))
        close(fig)
    result = {**result, "outputs": paths}
    if pngs:
        paths["report"] = str(out_dir / "report.html")
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td class='num'>{html.escape(_cell(v))}</td></tr>"
            for k, v in _flat_rows(result)
        )
        body = (
            f"<h1>{html.escape(title)}</h1><div class='sub'>{html.escape(result['data'])}</div>"
            f"<h2>Figures</h2>{figures_html(pngs)}<h2>Fit</h2><table>{rows}</table>"
        )
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>"
        )
        atomic_write_bytes(out_dir / "report.html", page.encode())
    atomic_write_json(out_dir / "fit.json", json_safe(result))
    return paths


def _flat_rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    rows = []
    for key in ("params", "compute_optimal", "ci", "diagnostics"):
        for k, v in (result.get(key) or {}).items():
            rows.append((f"{key}.{k}", v))
    rows += [("warning", w) for w in result.get("warnings", [])]
    return rows


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return "[" + ", ".join(_cell(x) for x in v) + "]"
    return str(v)


def _show(value: float | None, ci: list[float | None] | None = None) -> str:
    text = "–" if value is None else f"{value:.5g}"
    if ci and ci[0] is not None and ci[1] is not None:
        text += f"  [{ci[0]:.5g}, {ci[1]:.5g}]"
    return text


def report(result: dict[str, Any], as_json: bool, title: str) -> None:
    """Print the JSON, or a table of the estimates with CIs, diagnostics and warnings."""
    if as_json:
        return emit_json(result)
    conf = result.get("confidence", 0.95)
    table = Table(title=escape(f"{title} · {result['n_used']} runs"))
    table.add_column("parameter")
    table.add_column(f"estimate [{conf:.0%} CI]")
    ci = result.get("ci", {})
    for section in ("params", "compute_optimal"):
        for k, v in (result.get(section) or {}).items():
            table.add_row(plain(k), plain(_show(v, ci.get(k))))
    out.print(table)
    diag = result.get("diagnostics", {})
    out.print(
        plain(
            "  ".join(f"{k}={_cell(v)}" for k, v in diag.items() if not isinstance(v, dict | list))
        )
    )
    for row in result.get("budgets", []):
        out.print(
            plain(
                f"C={row['C']:.4g}: N_opt={_show(row['N_opt'], row.get('N_opt_ci'))}  "
                f"D_opt={_show(row['D_opt'], row.get('D_opt_ci'))}"
            )
        )
    for row in result.get("optima", []):
        flag = "  (outside the sampled sizes)" if row["extrapolated"] else ""
        out.print(
            plain(
                f"C={row['C']:.4g}: N_opt={row['N_opt']:.5g}  D_opt={row['D_opt']:.5g}  "
                f"loss={row['loss_opt']:.5g}  runs={row['n_runs']}{flag}"
            )
        )
    for w in result.get("warnings", []):
        warn(w)
    if "report" in result.get("outputs", {}):
        out.print(plain(f"report: {result['outputs']['report']}"))


def finish(result, figures, out_dir, data, kind, title, make_figures, as_json) -> None:
    from fmlab.store import json_safe

    result = json_safe(result)  # NaN → None, numpy scalars → Python numbers
    if make_figures:
        result["outputs"] = write_outputs(
            result, figures(), out_dir or default_out(data, kind), title
        )
    elif out_dir is not None:
        result["outputs"] = write_outputs(result, {}, out_dir, title)
    report(result, as_json, title)
