"""What ``fmlab list`` and the claim tables show: every registered name, and names whole
(a log or a pipe is not cut at rich's assumed 80 columns)."""

from __future__ import annotations

import importlib
import io
import json
import pkgutil

import pytest
from typer.testing import CliRunner

from fmlab.cli import app
from fmlab.cli.app import _Console, out
from fmlab.cli.core import _claims_table

LONG = "a-claim-name-long-enough-to-be-cut-short-at-eighty-columns-in-a-log"
SUMMARY = {
    "study": "s",
    "run_id": "r",
    "status": "completed",
    "claims": [
        {
            "id": LONG,
            "passed": True,
            "value": 1.0,
            "ci": [0.5, 1.0],
            "threshold": ">= 0.5",
            "source": "Someone, Someone Else and Others 2024 (a long source that wraps)",
        }
    ],
}


@pytest.fixture(scope="module")
def listing():
    cli = CliRunner()
    as_json = cli.invoke(app, ["list", "--json"])
    shown = cli.invoke(app, ["list"])
    assert as_json.exit_code == 0 and shown.exit_code == 0, shown.output
    return json.loads(as_json.stdout), shown.stdout


@pytest.mark.parametrize(
    "package, registry, key",
    [
        ("fmlab.instruments", "INSTRUMENTS", "instruments"),
        ("fmlab.sweep.executors", "EXECUTORS", "executors"),
        ("fmlab.trackers", "TRACKERS", "trackers"),
    ],
)
def test_every_module_of_a_discovered_package_is_listed(listing, package, registry, key):
    """What made logit-lens go missing (a second, hand-kept list): every module of the
    package registers what ``fmlab list`` shows, and nothing is listed from elsewhere."""
    data, shown = listing
    pkg = importlib.import_module(package)
    entries = getattr(pkg, registry)
    modules = {f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)} - {
        f"{package}.base"
    }
    registered_by = {
        getattr(entries.get(n), "measure", None)
        or getattr(entries.get(n), "create", None)
        or entries.get(n).open
        for n in entries.names()
    }
    assert {fn.__module__ for fn in registered_by} == modules
    assert data[key] == entries.names()
    assert f"{key}: {', '.join(entries.names())}" in shown


def test_logit_lens_is_listed(listing):
    data, shown = listing
    assert "logit-lens" in data["instruments"] and "logit-lens" in shown


def test_list_shows_every_claim_name_whole(listing):
    data, shown = listing
    for s in data["studies"]:
        for claim in s["claims"]:
            assert claim in shown, claim
    assert "…" not in shown


def test_claim_names_are_whole_in_a_log_and_in_a_narrow_terminal(capsys):
    out.print(_claims_table(SUMMARY))  # captured: no terminal, as in a log
    logged = capsys.readouterr().out
    assert LONG in logged and "…" not in logged
    assert "Someone, Someone Else and Others 2024 (a long source that wraps)" in logged
    terminal = _Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None)
    terminal.print(_claims_table(SUMMARY))
    text = terminal.file.getvalue()
    assert LONG in text  # the other columns wrap instead
