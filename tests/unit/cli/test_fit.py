"""``fmlab fit``: fits of CSVs generated from known laws, JSON output, and clear errors."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fmlab.cli import app
from fmlab.fit import HOFFMANN_PARAMS, ChinchillaParams, sample_chinchilla

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def chinchilla_csv(tmp_path_factory):
    """120 runs from Hoffmann et al.'s law with 0.5 % log-normal noise, in custom columns."""
    df = sample_chinchilla(120, HOFFMANN_PARAMS, noise=0.005, seed=4)
    path = tmp_path_factory.mktemp("fit") / "runs.csv"
    df.rename(columns={"N": "params", "D": "tokens", "loss": "val_loss"}).to_csv(path, index=False)
    return path


def test_chinchilla_json_recovers_the_law(chinchilla_csv, tmp_path):
    result = invoke(
        "fit", "chinchilla", chinchilla_csv, "--n-col", "params", "--d-col", "tokens",
        "--loss-col", "val_loss", "--bootstrap", "50", "--budget", "1e22",
        "--out", tmp_path / "out", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    p = data["params"]
    # With 120 points and 0.5 % noise the full-grid fit recovers E to ~1 % and the exponents
    # to ~0.03 (the ChinchillaFit tests bound this more tightly on 240 points).
    assert p["E"] == pytest.approx(HOFFMANN_PARAMS.E, rel=0.03)
    assert p["alpha"] == pytest.approx(HOFFMANN_PARAMS.alpha, abs=0.04)
    assert p["beta"] == pytest.approx(HOFFMANN_PARAMS.beta, abs=0.04)
    assert data["compute_optimal"]["a"] == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]))
    lo, hi = data["ci"]["E"]
    assert lo <= p["E"] <= hi
    diag = data["diagnostics"]
    assert diag["converged"] and diag["n_starts"] == 4500 and diag["r2_log"] > 0.99
    assert diag["rmse_log"] == pytest.approx(0.005, rel=0.3)  # the noise level we put in
    row = data["budgets"][0]
    n_true, _ = HOFFMANN_PARAMS.compute_optimal(1e22)
    assert row["N_opt"] == pytest.approx(float(n_true), rel=0.5)
    assert row["N_opt_ci"][0] <= row["N_opt"] <= row["N_opt_ci"][1]
    assert row["N_opt"] * row["D_opt"] * 6 == pytest.approx(1e22, rel=1e-9)
    files = data["outputs"]
    for name in ("fit", "frontier"):
        for ext in ("png", "svg"):
            assert (tmp_path / "out" / f"{name}.{ext}").stat().st_size > 1000
    page = (tmp_path / "out" / "report.html").read_text()
    assert "data:image/png;base64," in page and not re.search(r"(src|href)=['\"]https?://", page)
    assert json.loads((tmp_path / "out" / "fit.json").read_text())["params"] == p
    assert files["report"].endswith("report.html")


@pytest.mark.parametrize("saturating", [False, True])
def test_power_law_recovers_exponent(tmp_path, saturating):
    rng = np.random.default_rng(0)
    x = np.geomspace(1e3, 1e7, 25)
    E = 1.5 if saturating else 0.0
    y = (E + 40.0 * x**-0.3) * np.exp(0.002 * rng.standard_normal(len(x)))
    path = tmp_path / "curve.csv"
    pd.DataFrame({"tokens": x, "loss": y}).to_csv(path, index=False)
    args = ["fit", "power-law", path, "--x-col", "tokens", "--y-col", "loss", "--json"]
    result = invoke(*args, *(["--saturating"] if saturating else []), "--no-figures")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == ("saturating-power-law" if saturating else "power-law")
    assert data["params"]["alpha"] == pytest.approx(0.3, abs=0.02)
    if saturating:
        assert data["params"]["E"] == pytest.approx(1.5, rel=0.02)
    lo, hi = data["ci"]["alpha"]
    assert lo <= data["params"]["alpha"] <= hi
    assert "outputs" not in data  # --no-figures and no --out: nothing written


def test_isoflop_recovers_the_allocation_exponent(tmp_path):
    """IsoFLOP runs from a known Chinchilla law: the vertices follow N_opt = G (C/6)^a with
    a = β/(α+β) (Hoffmann et al. eq. 4); a 9-point profile per budget recovers a closely."""
    truth = ChinchillaParams(E=1.7, A=400.0, B=400.0, alpha=0.35, beta=0.30)
    rows = []
    for C in (1e18, 1e19, 1e20, 1e21):
        n_opt, _ = truth.compute_optimal(C)
        for N in float(n_opt) * np.geomspace(1 / 8, 8, 9):
            rows.append({"N": N, "C": C, "loss": float(truth.predict(N, C / (6 * N)))})
    path = tmp_path / "iso.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    result = invoke("fit", "isoflop", path, "--bootstrap", "100", "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # parabolas in log N are only approximately the true valley: a within 0.02 of 0.4615
    assert data["compute_optimal"]["a"] == pytest.approx(truth.a, abs=0.02)
    assert data["compute_optimal"]["a"] + data["compute_optimal"]["b"] == pytest.approx(1.0)
    assert len(data["optima"]) == 4 and data["n_used"] == 36
    assert (tmp_path / "o" / "isoflop.png").exists() and (tmp_path / "o" / "isoflop.svg").exists()


def test_isoflop_rounding_hint(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"N": np.geomspace(1e6, 1e8, 6), "loss": np.linspace(3, 2.5, 6)})
    df["C"] = 1e18 * (1 + 1e-6 * rng.random(6))  # the same budget, measured
    path = tmp_path / "measured.csv"
    df.to_csv(path, index=False)
    result = invoke("fit", "isoflop", path, "--no-figures")
    assert result.exit_code == 2 and "--c-digits" in one_line(result.output)


BAD_CASES = [
    # (mutation of a good table, fragments the one-line error must contain)
    (lambda df: df.drop(columns=["D"]), ["missing column(s) ['D']", "'N'", "'loss'"]),
    (lambda df: df.assign(N=df.N.where(df.index != 2, -5.0)), ["N has non-positive", "[3]"]),
    (lambda df: df.assign(loss=df.loss.where(df.index != 6, 0.0)), ["loss", "[7]"]),
    (lambda df: df.assign(D=df.D.where(df.index != 0, np.inf)), ["D has infinite", "[1]"]),
    (lambda df: df.assign(N=df.N.astype(object).where(df.index != 4, "1e9?")), ["'N'", "[5]"]),
]


@pytest.mark.parametrize(("mutate", "fragments"), BAD_CASES)
def test_bad_csv_is_one_clear_error(tmp_path, mutate, fragments):
    path = tmp_path / "bad.csv"
    mutate(sample_chinchilla(20, seed=2)).to_csv(path, index=False)
    result = invoke("fit", "chinchilla", path, "--bootstrap", "0", "--no-figures")
    assert result.exit_code == 2, result.output
    text = one_line(result.output)
    assert "Traceback" not in result.output and text.startswith("error:")
    for fragment in fragments:
        assert fragment in text


def test_table_output_default_out_dir_and_nan_rows(tmp_path):
    """Without --json: a table on stdout, a warning naming the NaN rows (dropped), and
    fit.json + figures + report.html in a folder next to the CSV; D derived from C = 6ND."""
    df = sample_chinchilla(30, noise=0.0, seed=3)
    df.loc[[4, 9], "loss"] = np.nan
    df["flops"] = 6 * df.N * df.D  # Epoch's extracted data give FLOP, not tokens
    path = tmp_path / "holes.csv"
    df.drop(columns=["D"]).to_csv(path, index=False)
    result = invoke("fit", "chinchilla", path, "--c-col", "flops", "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    assert "alpha" in result.stdout and "converged=True" in result.stdout
    text = one_line(result.output)
    assert "warning: dropping 2 row(s) with NaN" in text and "[5, 10]" in text
    folder = tmp_path / "holes_chinchilla_fit"
    assert (folder / "report.html").exists() and (folder / "frontier.svg").exists()
    data = json.loads((folder / "fit.json").read_text())
    assert data["n_rows"] == 30 and data["n_used"] == 28 and data["dropped_rows"] == [5, 10]
    # exact data: the law is recovered from the remaining rows
    assert data["params"]["E"] == pytest.approx(HOFFMANN_PARAMS.E, rel=1e-4)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--n-col", "nope"], "missing column(s) ['nope']"),
        (["--huber-delta", "0"], "--huber-delta must be a finite number > 0"),
        (["--exclude-top-loss", "30"], "exclude_top_loss must be in [0, 20)"),
        (["--d-col", "D", "--c-col", "C"], "either --d-col or --c-col"),
    ],
)
def test_bad_options_are_clear_errors(tmp_path, args, fragment):
    path = tmp_path / "ok.csv"
    sample_chinchilla(20, seed=5).to_csv(path, index=False)
    result = invoke("fit", "chinchilla", path, "--bootstrap", "0", "--no-figures", *args)
    assert result.exit_code == 2 and fragment in one_line(result.output), result.output


def test_missing_or_unreadable_file(tmp_path):
    result = invoke("fit", "chinchilla", tmp_path / "nothing.csv")
    assert result.exit_code == 2 and "does not exist" in one_line(result.output)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = invoke("fit", "power-law", empty, "--x-col", "a", "--y-col", "b")
    assert result.exit_code == 2 and "cannot read" in one_line(result.output)


def test_too_few_points_is_a_clear_error(tmp_path):
    path = tmp_path / "few.csv"
    sample_chinchilla(5, seed=6).to_csv(path, index=False)
    result = invoke("fit", "chinchilla", path, "--bootstrap", "0", "--no-figures")
    assert result.exit_code == 2 and "at least 6 points" in one_line(result.output)


# ---- large inputs: the memory limit, progress, subsamples -----------------------------------


def test_over_the_memory_limit_is_one_line_naming_limit_and_override(tmp_path, monkeypatch):
    path = tmp_path / "ok.csv"
    sample_chinchilla(200, seed=5).to_csv(path, index=False)
    result = invoke("fit", "chinchilla", path, "--no-figures", "--max-memory", "1MiB")
    text = one_line(result.output)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert text.startswith("error:") and "over the limit of 1 MiB" in text
    assert "--max-memory" in text and "FMLAB_FIT_MAX_MEMORY" in text
    monkeypatch.setenv("FMLAB_FIT_MAX_MEMORY", "1MiB")  # the default limit, from the environment
    result = invoke("fit", "isoflop", path, "--no-figures", "--c-col", "D")
    assert result.exit_code == 2 and "over the limit of 1 MiB" in one_line(result.output)
    result = invoke("fit", "chinchilla", path, "--no-figures", "--max-memory", "lots")
    assert result.exit_code == 2 and "not an amount of memory" in one_line(result.output)


def test_a_large_csv_reports_progress_on_stderr(tmp_path):
    rng = np.random.default_rng(1)
    x = np.exp(rng.uniform(10, 20, 12_000))
    path = tmp_path / "big.csv"
    pd.DataFrame({"x": x, "y": 30 * x**-0.2}).to_csv(path, index=False)
    args = ["fit", "power-law", path, "--x-col", "x", "--y-col", "y", "--json", "--no-figures"]
    result = invoke(*args, "--bootstrap", "20")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"]["alpha"] == pytest.approx(0.2)
    assert "fit: bootstrap (20) ..." in result.stderr and "done in" in result.stderr
    small = tmp_path / "small.csv"
    pd.DataFrame({"x": x[:50], "y": 30 * x[:50] ** -0.2}).to_csv(small, index=False)
    result = invoke("fit", "power-law", small, *args[3:], "--bootstrap", "20")
    assert result.exit_code == 0 and "fit:" not in result.stderr  # small inputs stay quiet


def test_subsampled_chinchilla_fit_says_so(chinchilla_csv):
    result = invoke(
        "fit", "chinchilla", chinchilla_csv, "--n-col", "params", "--d-col", "tokens",
        "--loss-col", "val_loss", "--bootstrap", "20", "--max-points", "64", "--json",
        "--no-figures",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["diagnostics"]["subsample"] == 64 and data["n_used"] == 120
    assert data["params"]["E"] == pytest.approx(HOFFMANN_PARAMS.E, rel=0.03)
    assert "random 64 of the 120 runs" in one_line(result.stderr)


def test_running_out_of_memory_is_one_line(tmp_path, monkeypatch):
    from fmlab.fit import PowerLaw

    def oom(self, x, y):
        raise MemoryError("Unable to allocate 7.45 GiB")

    monkeypatch.setattr(PowerLaw, "fit", oom)
    path = tmp_path / "curve.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [4.0, 3.0, 2.0, 1.0]}).to_csv(path, index=False)
    result = invoke("fit", "power-law", path, "--x-col", "x", "--y-col", "y", "--no-figures")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert one_line(result.output).startswith("error: ran out of memory")
