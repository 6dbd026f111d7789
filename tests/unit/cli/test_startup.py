"""Start-up stays cheap: ``fmlab --help`` and ``fmlab fit … --no-figures`` never import
torch (a fit needs numpy and scipy only), nor matplotlib without figures."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

PROBE = """
import sys
from typer.testing import CliRunner
from fmlab.cli import app
result = CliRunner().invoke(app, {args!r})
assert result.exit_code == 0, result.output
print(sorted(m for m in ("torch", "matplotlib", "transformers") if m in sys.modules))
"""


def _modules_after(args: list[str]) -> str:
    code = PROBE.format(args=args)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_help_imports_no_torch():
    assert _modules_after(["--help"]) == "[]"
    assert _modules_after(["sweep", "--help"]) == "[]"


def test_a_fit_without_figures_imports_no_torch_nor_matplotlib(tmp_path):
    rng = np.random.default_rng(0)
    N, D = np.meshgrid(np.geomspace(1e6, 1e8, 5), np.geomspace(1e8, 1e10, 5))
    loss = 1.7 + 400 / N.ravel() ** 0.34 + 410 / D.ravel() ** 0.28
    loss *= np.exp(rng.normal(0, 0.01, loss.size))
    rows = "".join(f"{n},{d},{v}\n" for n, d, v in zip(N.ravel(), D.ravel(), loss, strict=True))
    (tmp_path / "runs.csv").write_text("N,D,loss\n" + rows)
    args = ["fit", "chinchilla", str(tmp_path / "runs.csv"), "--no-figures", "--bootstrap", "0"]
    assert _modules_after(args) == "[]"
