"""``fmlab fit chinchilla | power-law | isoflop``: fit scaling laws to a CSV of runs.

Each command reads one row per run, checks the columns it needs with
:func:`fmlab.fit.validate_scaling_table` (a missing column, a non-numeric or non-positive
value, or an infinity is an error naming the rows; rows with NaN are dropped with a warning),
fits with :mod:`fmlab.fit`, prints a table (or everything as JSON with ``--json``), and writes
``fit.json``, PNG + SVG figures and a small self-contained ``report.html`` into ``--out``
(default: a folder next to the CSV). Rows are numbered from 1, after the header line.

Large CSVs (docs/scaling.md): before reading, the peak memory of reading and fitting is
estimated from the file's size and a fit over ``--max-memory`` (default
``$FMLAB_FIT_MAX_MEMORY`` or 4 GiB) is refused in one line saying so; above ``--max-points``
runs the iterative fits use a subsample for their starts and bootstrap (the optimum is
polished on every run). Progress: bars on a terminal, else a line per stage on stderr for
inputs of more than 10,000 rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import typer

from fmlab.cli import fit_plots as plots
from fmlab.cli.app import app, err, friendly, show_progress
from fmlab.cli.fit_io import checked_table, ci_pair, collected_warnings, finish
from fmlab.errors import UserInputError
from fmlab.fit._large import (
    DEFAULT_MAX_POINTS,
    MAX_MEMORY_ENV,
    MemoryLimitError,
    check_memory,
    csv_shape_estimate,
)

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
MAX_MEMORY = typer.Option(
    None,
    "--max-memory",
    help=f"refuse fits estimated to need more memory, e.g. 16GiB [${MAX_MEMORY_ENV} or 4GiB]",
)
MAX_POINTS = typer.Option(
    DEFAULT_MAX_POINTS,
    "--max-points",
    min=0,
    help="above this many runs, grid starts and bootstrap use a random subsample (0: never)",
)
_LINES_ABOVE = 10_000  # off a terminal, inputs with more rows print their stages to stderr


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
    max_points: int = MAX_POINTS,
    max_memory: str | None = MAX_MEMORY,
    out_dir: Path | None = OUT,
    figures: bool = FIGURES,
    as_json: bool = JSON,
) -> None:
    """Fit L(N, D) = E + A/N^α + B/D^β (Hoffmann et al.'s approach 3) with bootstrap CIs."""
    from fmlab.fit import ChinchillaFit
    from fmlab.fit.quality import log_fit_quality

    if not 0 < huber_delta < float("inf"):
        raise UserInputError(f"--huber-delta must be a finite number > 0, got {huber_delta}")
    if any(not c > 0 for c in budget):
        raise UserInputError(f"--budget values must be > 0, got {budget}")
    with collected_warnings() as notes, _large_input(data, as_json, max_memory) as run:
        fit = run.check(
            ChinchillaFit,
            delta=huber_delta,
            exclude_top_loss=exclude_top_loss,
            n_bootstrap=bootstrap,
            confidence=confidence,
            seed=seed,
            max_points=max_points or None,
        )
        df, dropped, columns = run(lambda: _chinchilla_table(data, n_col, d_col, c_col, loss_col))
        run(lambda: fit.fit(df.N, df.D, df.loss))
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
            **{k: summary[k] for k in ("n_starts_converged", "n_starts_finished")},
            **{k: summary[k] for k in ("n_in_best_basin", "at_grid_edge")},
            "bootstrap": bootstrap,
            "bootstrap_converged": summary.get("bootstrap_converged"),
            "huber_delta": huber_delta,
            **quality.as_dict(),
            **_subsample_note(fit),
        },
        "budgets": [_budget_row(fit, c, bootstrap) for c in budget],
        "warnings": notes,
    }
    finish(
        result,
        lambda: plots.chinchilla_figures(fit, df),
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
    max_points: int = MAX_POINTS,
    max_memory: str | None = MAX_MEMORY,
    out_dir: Path | None = OUT,
    figures: bool = FIGURES,
    as_json: bool = JSON,
) -> None:
    """Fit y = A x^-α (least squares in log-log) or, with --saturating, y = E + A x^-α."""
    from fmlab.fit import PowerLaw, SaturatingPowerLaw
    from fmlab.fit.quality import log_fit_quality

    options: dict[str, Any] = {"n_bootstrap": bootstrap, "confidence": confidence, "seed": seed}
    if saturating:
        options["max_points"] = max_points or None
    with collected_warnings() as notes, _large_input(data, as_json, max_memory) as run:
        fit = run.check(SaturatingPowerLaw if saturating else PowerLaw, **options)
        df, dropped = run(lambda: checked_table(data, {"x": x_col, "y": y_col}))
        run(lambda: fit.fit(df.x, df.y))
    names = ("E", "A", "alpha") if saturating else ("A", "alpha")
    quality = log_fit_quality(df.y, fit.predict(df.x))
    diagnostics: dict[str, Any] = {"bootstrap": bootstrap, **quality.as_dict()}
    if saturating:
        diagnostics |= {"converged": fit.converged_, "grad_norm": fit.grad_norm_}
        diagnostics |= _subsample_note(fit)
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
    finish(
        result,
        lambda: plots.power_law_figures(fit, df, x_col, y_col),
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
    max_memory: str | None = MAX_MEMORY,
    out_dir: Path | None = OUT,
    figures: bool = FIGURES,
    as_json: bool = JSON,
) -> None:
    """IsoFLOP profiles (Hoffmann et al.'s approach 2): N_opt ∝ C^a across budgets."""
    from fmlab.fit import IsoFlopFit

    with collected_warnings() as notes, _large_input(data, as_json, max_memory) as run:
        fit = run.check(
            IsoFlopFit, n_bootstrap=bootstrap, confidence=confidence, seed=seed, min_runs=min_runs
        )
        df, dropped = run(lambda: checked_table(data, {"N": n_col, "loss": loss_col, "C": c_col}))
        if c_digits is not None:
            df["C"] = [float(f"{c:.{c_digits - 1}e}") for c in df.C]
        hint = "" if c_digits else "; if budgets differ only by rounding, pass --c-digits 3"
        run(lambda: fit.fit(df.N, df.loss, df.C), hint)
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
    finish(
        result,
        lambda: plots.isoflop_figures(fit, df),
        out_dir,
        data,
        "isoflop",
        "IsoFLOP fit (approach 2)",
        figures,
        as_json,
    )


# ---- large inputs: memory check, progress, errors --------------------------------------------


def _subsample_note(fit: Any) -> dict[str, Any]:
    m = getattr(fit, "subsample_", None)
    if m is None:
        return {}
    err.print(
        f"note: starts and bootstrap used a random {m:,} of the {fit.n_points_:,} runs; the "
        "optimum is polished on all of them and the CIs rescaled (see docs/scaling.md)",
        markup=False,
        highlight=False,
    )
    return {"subsample": m}


class _Run:
    """Runs the steps of one fit: their memory check, progress display and errors."""

    def __init__(self, data: Path, as_json: bool, max_memory: str | None, stack: ExitStack):
        self.data, self.max_memory = data, max_memory
        self.rows, self.columns = csv_shape_estimate(data) if data.is_file() else (0, 1)
        self.bars = None
        if show_progress(as_json):
            from fmlab.progress import Progress

            self.bars = stack.enter_context(Progress(err))
        self.lines = self.bars is None and self.rows > _LINES_ABOVE
        self.stage: str | None = None
        self.stage_stack, self.bar, self.shown, self.started = stack, None, 0.0, 0.0
        stack.callback(self._end_stage)

    def check(self, cls: type, **options: Any) -> Any:
        """The fit object, once its estimated peak (reading the table, then fitting) fits."""
        fit = self(lambda: cls(max_memory=self.max_memory, progress=self.progress, **options))
        # pandas holds each parsed cell as 8 bytes, ~3x while parsing; checks copy the columns
        table = 8 * self.rows * (3 * self.columns + 8)
        what = f"fitting {self.data.name} (about {self.rows:,} rows)"
        self(lambda: check_memory(what, table + fit.memory_estimate(self.rows), self.max_memory))
        return fit

    def __call__(self, step: Callable[[], Any], hint: str = "") -> Any:
        """Run ``step``; what a user's CSV or options can cause becomes one line."""
        try:
            return step()
        except MemoryLimitError as e:
            raise UserInputError(e.message(f"--max-memory (or ${MAX_MEMORY_ENV})")) from None
        except MemoryError:
            raise UserInputError(
                "ran out of memory; try fewer --bootstrap resamples or a lower --max-points, "
                "or free memory"
            ) from None
        except ValueError as e:  # a bad table, too few points, an unusable option or limit
            raise UserInputError(f"{e}{hint}") from None

    def progress(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self._end_stage()
            self.stage, self.started, self.shown = stage, time.monotonic(), time.monotonic()
            if self.bars is not None:
                self.stage_stack = ExitStack()
                self.bar = self.stage_stack.enter_context(self.bars.task(stage, total))
            elif self.lines:
                self._line(f"fit: {stage} ...")
        if self.bar is not None:
            self.bar(done)
        elif self.lines and time.monotonic() - self.shown >= 10:
            self.shown = time.monotonic()
            self._line(f"fit: {stage}: {done}/{total}")

    def _end_stage(self) -> None:
        if self.bar is not None:
            self.stage_stack.close()  # completes the bar
            self.bar = None
        elif self.lines and self.stage is not None:
            self._line(f"fit: {self.stage}: done in {time.monotonic() - self.started:.1f} s")
        self.stage = None

    def _line(self, text: str) -> None:
        err.print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def _large_input(data: Path, as_json: bool, max_memory: str | None) -> Iterator[_Run]:
    with ExitStack() as stack:
        run = _Run(data, as_json, max_memory, stack)
        try:
            yield run
        except BaseException:
            run.stage = None  # no "done" line for a stage cut short
            raise
