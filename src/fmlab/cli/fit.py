"""``fmlab fit chinchilla | power-law | isoflop``: fit scaling laws to a CSV of runs.

Each command reads one row per run, checks the columns it needs with
:func:`fmlab.fit.validate_scaling_table` (a missing column, a non-numeric or non-positive
value, or an infinity is an error naming the rows; rows with NaN are dropped with a warning),
fits with :mod:`fmlab.fit`, prints a table (or everything as JSON with ``--json``), and writes
``fit.json``, PNG + SVG figures and a small self-contained ``report.html`` into ``--out``
(default: a folder next to the CSV). Rows are numbered from 1, after the header line.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from fmlab.cli.app import app, emit_json, err, friendly, out
from fmlab.errors import UserInputError

fit_app = typer.Typer(
    help="Fit scaling laws to a CSV of runs (Hoffmann et al. 2022; Besiroglu et al. 2024).",
    no_args_is_help=True,
)
app.add_typer(fit_app, name="fit")

DATA = typer.Argument(..., help="CSV file, one row per run, with a header line")
OUT = typer.Option(None, "--out", "-o", help="folder for fit.json, figures and report.html")
FIGURES = typer.Option(True, "--figures/--no-figures", help="write PNG/SVG figures + HTML")
JSON = typer.Option(False, "--json", help="print everything as JSON")
SEED = typer.Option(0, "--seed", help="seed of the bootstrap resampling")
CONF = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="CI level")


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


def fit_or_explain(fn: Callable[[], Any]) -> Any:
    """Run a fit; a ``ValueError`` (too few points, an unusable option) becomes one line."""
    try:
        return fn()
    except ValueError as e:
        raise UserInputError(str(e)) from None


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
    table = Table(title=f"{title} · {result['n_used']} runs")
    table.add_column("parameter")
    table.add_column(f"estimate [{conf:.0%} CI]")
    ci = result.get("ci", {})
    for section in ("params", "compute_optimal"):
        for k, v in (result.get(section) or {}).items():
            table.add_row(k, _show(v, ci.get(k)))
    out.print(table)
    diag = result.get("diagnostics", {})
    out.print(
        "  ".join(f"{k}={_cell(v)}" for k, v in diag.items() if not isinstance(v, dict | list))
    )
    for row in result.get("budgets", []):
        out.print(
            f"C={row['C']:.4g}: N_opt={_show(row['N_opt'], row.get('N_opt_ci'))}  "
            f"D_opt={_show(row['D_opt'], row.get('D_opt_ci'))}"
        )
    for row in result.get("optima", []):
        flag = "  (outside the sampled sizes)" if row["extrapolated"] else ""
        out.print(
            f"C={row['C']:.4g}: N_opt={row['N_opt']:.5g}  D_opt={row['D_opt']:.5g}  "
            f"loss={row['loss_opt']:.5g}  runs={row['n_runs']}{flag}"
        )
    for w in result.get("warnings", []):
        err.print(f"[yellow]warning:[/] {w}")
    if "report" in result.get("outputs", {}):
        out.print(f"report: {result['outputs']['report']}")


def _finish(result, figures, out_dir, data, kind, title, make_figures, as_json) -> None:
    from fmlab.store import json_safe

    result = json_safe(result)  # NaN → None, numpy scalars → Python numbers
    if make_figures:
        result["outputs"] = write_outputs(
            result, figures(), out_dir or default_out(data, kind), title
        )
    elif out_dir is not None:
        result["outputs"] = write_outputs(result, {}, out_dir, title)
    report(result, as_json, title)


# ---- commands -------------------------------------------------------------------------------


@fit_app.command("chinchilla")
@friendly
def chinchilla(
    data: Path = DATA,
    n_col: str = typer.Option("N", "--n-col", help="column of model sizes N (parameters)"),
    d_col: str | None = typer.Option(None, "--d-col", help="column of training tokens D [D]"),
    c_col: str | None = typer.Option(
        None, "--c-col", help="instead of --d-col: column of training FLOP C; D = C / 6N"
    ),
    loss_col: str = typer.Option("loss", "--loss-col", help="column of final losses"),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="resamples for CIs (0: none)"),
    huber_delta: float = typer.Option(1e-3, "--huber-delta", help="Huber δ on log-loss residuals"),
    exclude_top_loss: int = typer.Option(
        0, "--exclude-top-loss", min=0, help="drop the K highest-loss runs (Besiroglu et al.: 5)"
    ),
    budget: list[float] = typer.Option(
        [], "--budget", help="FLOP budget C for a compute-optimal (N, D) with CIs; repeatable"
    ),
    seed: int = SEED,
    confidence: float = CONF,
    out_dir: Path | None = OUT,
    figures: bool = FIGURES,
    as_json: bool = JSON,
) -> None:
    """Fit L(N, D) = E + A/N^α + B/D^β (Hoffmann et al.'s approach 3) with bootstrap CIs."""
    from fmlab.fit import ChinchillaFit
    from fmlab.fit.figures import chinchilla_figures, log_fit_quality

    if not huber_delta > 0:
        raise UserInputError(f"--huber-delta must be > 0, got {huber_delta}")
    if any(not c > 0 for c in budget):
        raise UserInputError(f"--budget values must be > 0, got {budget}")
    with collected_warnings() as notes:
        df, dropped, columns = _chinchilla_table(data, n_col, d_col, c_col, loss_col)
        fit = ChinchillaFit(
            delta=huber_delta,
            exclude_top_loss=exclude_top_loss,
            n_bootstrap=bootstrap,
            confidence=confidence,
            seed=seed,
        )
        fit_or_explain(lambda: fit.fit(df.N, df.D, df.loss))
    summary = fit.summary()
    kept = np.setdiff1d(np.arange(len(df)), fit.excluded_)
    quality = log_fit_quality(df.loss.to_numpy()[kept], fit.predict(df.N, df.D)[kept])
    result: dict[str, Any] = {
        "kind": "chinchilla",
        "data": str(data),
        "columns": columns,
        "n_rows": len(df) + len(dropped),
        "n_used": fit.n_points_,
        "dropped_rows": dropped,
        "excluded_rows": [int(df.index[i]) for i in fit.excluded_],
        "params": {k: summary[k] for k in ("E", "A", "B", "alpha", "beta")},
        "compute_optimal": {k: summary[k] for k in ("a", "b", "G")},
        "ci": summary.get("ci", {}),
        "confidence": confidence,
        "diagnostics": {
            **{k: summary[k] for k in ("objective", "grad_norm", "converged", "n_starts")},
            **{k: summary[k] for k in ("n_starts_converged", "n_in_best_basin", "at_grid_edge")},
            "bootstrap": bootstrap,
            "bootstrap_converged": summary.get("bootstrap_converged"),
            "huber_delta": huber_delta,
            **quality.as_dict(),
        },
        "budgets": [_budget_row(fit, c, bootstrap) for c in budget],
        "warnings": notes,
    }
    _finish(
        result,
        lambda: chinchilla_figures(
            fit.params_, df.N, df.D, df.loss, bootstrap=getattr(fit, "bootstrap_", None)
        ),
        out_dir,
        data,
        "chinchilla",
        "Chinchilla fit (approach 3)",
        figures,
        as_json,
    )


def _chinchilla_table(data: Path, n_col: str, d_col: str | None, c_col: str | None, loss_col):
    """The N, D, loss table; with ``--c-col`` D is derived as C / 6N (Besiroglu et al.'s
    convention for the extracted Chinchilla data, which gives FLOP rather than tokens)."""
    if d_col is not None and c_col is not None:
        raise UserInputError("give either --d-col or --c-col, not both")
    if c_col is None:
        columns = {"N": n_col, "D": d_col or "D", "loss": loss_col}
        return (*checked_table(data, columns), columns)
    columns = {"N": n_col, "C": c_col, "loss": loss_col}
    df, dropped = checked_table(data, columns)
    df["D"] = df.C / (6 * df.N)
    return df, dropped, columns


def _budget_row(fit: Any, C: float, bootstrap: int) -> dict[str, Any]:
    n_opt, d_opt = fit.compute_optimal(C)
    row = {"C": C, "N_opt": float(n_opt), "D_opt": float(d_opt)}
    row["loss_opt"] = float(fit.predict(n_opt, d_opt))
    if bootstrap > 0:
        cis = fit.compute_optimal_ci(C)
        row |= {"N_opt_ci": ci_pair(cis["N_opt"]), "D_opt_ci": ci_pair(cis["D_opt"])}
    return row


@fit_app.command("power-law")
@friendly
def power_law(
    data: Path = DATA,
    x_col: str = typer.Option(..., "--x-col", help="column of the scaled quantity (N, D, C …)"),
    y_col: str = typer.Option(..., "--y-col", help="column of the loss (or other metric)"),
    saturating: bool = typer.Option(
        False, "--saturating", help="fit y = E + A x^-α instead of y = A x^-α"
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="resamples for CIs (0: none)"),
    seed: int = SEED,
    confidence: float = CONF,
    out_dir: Path | None = OUT,
    figures: bool = FIGURES,
    as_json: bool = JSON,
) -> None:
    """Fit y = A x^-α (least squares in log-log) or, with --saturating, y = E + A x^-α."""
    from fmlab.fit import PowerLaw, SaturatingPowerLaw
    from fmlab.fit.figures import log_fit_quality, power_law_figure

    cls = SaturatingPowerLaw if saturating else PowerLaw
    with collected_warnings() as notes:
        df, dropped = checked_table(data, {"x": x_col, "y": y_col})
        fit = cls(n_bootstrap=bootstrap, confidence=confidence, seed=seed)
        fit_or_explain(lambda: fit.fit(df.x, df.y))
    names = ("E", "A", "alpha") if saturating else ("A", "alpha")
    quality = log_fit_quality(df.y, fit.predict(df.x))
    diagnostics: dict[str, Any] = {"bootstrap": bootstrap, **quality.as_dict()}
    if saturating:
        diagnostics |= {"converged": fit.converged_, "grad_norm": fit.grad_norm_}
    result = {
        "kind": "saturating-power-law" if saturating else "power-law",
        "data": str(data),
        "columns": {"x": x_col, "y": y_col},
        "n_rows": len(df) + len(dropped),
        "n_used": fit.n_points_,
        "dropped_rows": dropped,
        "params": {k: getattr(fit, f"{k}_") for k in names},
        "ci": {k: ci_pair(c) for k, c in getattr(fit, "ci_", {}).items()},
        "confidence": confidence,
        "diagnostics": diagnostics,
        "warnings": notes,
    }
    _finish(
        result,
        lambda: {"power_law": power_law_figure(fit, df.x, df.y, xlabel=x_col, ylabel=y_col)},
        out_dir,
        data,
        "power_law",
        f"{'Saturating power' if saturating else 'Power'} law: {y_col} against {x_col}",
        figures,
        as_json,
    )


@fit_app.command("isoflop")
@friendly
def isoflop(
    data: Path = DATA,
    n_col: str = typer.Option("N", "--n-col", help="column of model sizes N"),
    loss_col: str = typer.Option("loss", "--loss-col", help="column of final losses"),
    c_col: str = typer.Option("C", "--c-col", help="column of each run's FLOP budget"),
    c_digits: int | None = typer.Option(
        None, "--c-digits", min=1, help="round C to this many significant digits to group runs"
    ),
    min_runs: int = typer.Option(3, "--min-runs", min=3, help="fewest sizes per usable budget"),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="resamples for CIs (0: none)"),
    seed: int = SEED,
    confidence: float = CONF,
    out_dir: Path | None = OUT,
    figures: bool = FIGURES,
    as_json: bool = JSON,
) -> None:
    """IsoFLOP profiles (Hoffmann et al.'s approach 2): N_opt ∝ C^a across budgets."""
    from fmlab.fit import IsoFlopFit

    with collected_warnings() as notes:
        df, dropped = checked_table(data, {"N": n_col, "loss": loss_col, "C": c_col})
        if c_digits is not None:
            df["C"] = [float(f"{c:.{c_digits - 1}e}") for c in df.C]
        fit = IsoFlopFit(n_bootstrap=bootstrap, confidence=confidence, seed=seed, min_runs=min_runs)
        try:
            fit.fit(df.N, df.loss, df.C)
        except ValueError as e:
            hint = "" if c_digits else "; if budgets differ only by rounding, pass --c-digits 3"
            raise UserInputError(f"{e}{hint}") from None
    result = {
        "kind": "isoflop",
        "data": str(data),
        "columns": {"N": n_col, "loss": loss_col, "C": c_col},
        "n_rows": len(df) + len(dropped),
        "n_used": int(fit.optima_["n_runs"].sum()),
        "dropped_rows": dropped,
        "compute_optimal": {"a": fit.a_, "b": fit.b_, "N_coef": fit.N_coef_, "D_coef": fit.D_coef_},
        "ci": {k: ci_pair(c) for k, c in getattr(fit, "ci_", {}).items()},
        "confidence": confidence,
        "diagnostics": {
            "bootstrap": bootstrap,
            "n_budgets": len(fit.optima_),
            "bootstrap_failed": getattr(fit, "bootstrap_failed_", None),
        },
        "optima": fit.optima_.to_dict(orient="records"),
        "warnings": notes,
    }
    _finish(
        result,
        lambda: _isoflop_figures(fit, df),
        out_dir,
        data,
        "isoflop",
        "IsoFLOP fit (approach 2)",
        figures,
        as_json,
    )


def _isoflop_figures(fit: Any, df: pd.DataFrame) -> dict[str, Any]:
    from fmlab.fit.figures import isoflop_figures

    return isoflop_figures(fit, df.N, df.loss, df.C)
