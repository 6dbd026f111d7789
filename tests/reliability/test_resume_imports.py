"""Promise 1: resuming a sweep imports nothing the user did not name on this command line
(importing a module runs its code; a shared runs directory could name any module)."""

from __future__ import annotations

import json
import subprocess

from tests.reliability.helpers import TOY, cli

from fmlab.sweep.record import SWEEP_FILE

EVIL = "import pathlib, os\npathlib.Path(os.environ['EVIL_MARK']).write_text('imported')\n"


def _edit_spec(sweep, **changes):
    record = json.loads((sweep / SWEEP_FILE).read_text())
    record["spec"].update(changes)
    (sweep / SWEEP_FILE).write_text(json.dumps(record))


def test_a_sweep_json_naming_a_module_is_resumed_without_importing_it(tmp_path, toy_env):
    env, _ = toy_env
    (tmp_path / "evil_module.py").write_text(EVIL)
    env = {**env, "EVIL_MARK": str(tmp_path / "evil-ran"),
           "PYTHONPATH": f"{tmp_path}:{env['PYTHONPATH']}"}  # fmt: skip
    runs = tmp_path / "runs"
    first = cli("sweep", "grokking", "-p", "smoke", "--set", "train.steps=5", "--out", runs)
    assert subprocess.run(first, env=env, capture_output=True).returncode == 0
    sweep = runs / "sweeps" / "grokking-smoke"
    _edit_spec(sweep, imports=["evil_module"])  # someone with write access to runs/
    resumed = subprocess.run(
        cli("sweep", "--resume", "grokking-smoke", "--out", runs), env=env, capture_output=True
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert not (tmp_path / "evil-ran").exists()


def test_a_plugin_study_is_resumed_only_with_its_import_named(tmp_path, toy_env):
    env, _ = toy_env
    runs = tmp_path / "runs"
    ran = subprocess.run(cli("sweep", "sweep-toy", *TOY, "--grid", "x=1,2", "--out", runs),
                         env=env, capture_output=True)  # fmt: skip
    assert ran.returncode == 0, ran.stderr.decode()
    refused = subprocess.run(cli("sweep", "--resume", "sweep-toy-smoke", "--out", runs),
                             env=env, capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--import fmlab_sweep_toy" in refused.stderr and "runs their code" in refused.stderr
    named = subprocess.run(
        cli("sweep", "--resume", "sweep-toy-smoke", "--import", "fmlab_sweep_toy", "--out", runs),
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert "already done 2" in named.stdout
