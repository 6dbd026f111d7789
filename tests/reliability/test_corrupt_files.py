"""Promise 4: one bad file breaks nothing. A corpus of corrupted run and sweep directories
(generated here: truncations at many offsets, wrong types, wrong encodings, a directory in
a file's place) is read by every command: each exits with a clear message naming the file
or skips it with a one-line warning — never a traceback — and a resumed sweep reruns
exactly the broken runs, keeping their old files aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmlab.cli import app
from fmlab.sweep import run_sweep, sweep_spec

runner = CliRunner()
FILES = ("summary.json", "config.json", "metrics.parquet", "sweep.json")


def _json_variants(data: dict) -> dict[str, bytes]:
    """Wrong shapes and types of a JSON object."""
    out = {
        "list": b"[]",
        "string": b'"summary"',
        "null": b"null",
        "number": b"3",
        "empty-object": b"{}",
    }
    for key, value in data.items():
        bad = [] if not isinstance(value, list) else {"x": 1}
        out[f"{key}-wrong-type"] = json.dumps({**data, key: bad}).encode()
    return out


def corruptions(raw: bytes, is_json: bool) -> dict[str, bytes | None]:
    """Name → new content (None: a directory in the file's place)."""
    offsets = sorted({0, 1, 7, len(raw) // 3, len(raw) // 2, len(raw) - 1})
    cases: dict[str, bytes | None] = {f"truncated-{n}": raw[:n] for n in offsets}
    cases["utf16"] = raw.decode("latin-1").encode("utf-16")
    cases["latin1-bytes"] = raw[: len(raw) // 2] + b"\xff\xfe\xe9" + raw[len(raw) // 2 :]
    cases["directory"] = None
    if is_json:
        cases |= _json_variants(json.loads(raw))
    return cases


# The required keys of each JSON file, for naming the wrong-type cases up front (the
# content is then made from the real file); metrics.parquet gets the generic cases.
REQUIRED = {
    "summary.json": ("study", "run_id", "status", "config", "metrics", "claims"),
    "config.json": ("study", "run_id", "config"),
    "sweep.json": ("name", "sweep_id", "study", "spec", "runs"),
}
GENERIC = ("truncated-0", "truncated-1", "truncated-7", "truncated-third", "truncated-half",
           "truncated-last", "utf16", "latin1-bytes", "directory")  # fmt: skip
SHAPES = ("list", "string", "null", "number", "empty-object")


def _cases() -> list[tuple[str, str]]:
    out = []
    for name in FILES:
        extra = (*SHAPES, *(f"{k}-wrong-type" for k in REQUIRED[name])) if name in REQUIRED else ()
        out += [(name, label) for label in (*GENERIC, *extra)]
    return out


def _content(raw: bytes, name: str, label: str) -> bytes | None:
    named = {"truncated-third": f"truncated-{len(raw) // 3}",
             "truncated-half": f"truncated-{len(raw) // 2}",
             "truncated-last": f"truncated-{len(raw) - 1}"}  # fmt: skip
    return corruptions(raw, name.endswith(".json"))[named.get(label, label)]


@pytest.fixture
def sweep(toy, tmp_path):
    spec = sweep_spec("sweep-toy", "smoke", grid={"x": [1.0, 2.0, 3.0, 4.0]})
    result = run_sweep(spec, directory=tmp_path / "sweep", threads=1)
    assert result.count("completed") == 4
    return result.directory


def _corrupt(sweep_dir: Path, name: str, content: bytes | None) -> Path:
    run = sorted((sweep_dir / "sweep-toy").iterdir())[0]
    target = sweep_dir / name if name == "sweep.json" else run / name
    target.unlink()
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content)
    return target


def _commands(sweep_dir: Path, run: Path) -> list[list[str]]:
    s = str(sweep_dir)
    return [
        ["status", s],
        ["table", s],
        ["report", s],
        ["report", str(run)],
        ["show", str(run)],
        ["sweep", "--resume", s, "--import", "fmlab_sweep_toy"],
    ]


def _clean(result, target: Path) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2)
    if result.exit_code != 0 or "warning" in result.output:
        assert target.name in result.output, result.output


@pytest.mark.parametrize(("name", "label"), _cases())
def test_every_read_command_copes_with_a_corrupt_file(sweep, name, label):
    run = sorted((sweep / "sweep-toy").iterdir())[0]
    path = sweep / name if name == "sweep.json" else run / name
    target = _corrupt(sweep, name, _content(path.read_bytes(), name, label))
    for args in _commands(sweep, run):
        _clean(runner.invoke(app, args), target)


def test_a_resumed_sweep_reruns_exactly_the_broken_runs(sweep, toy):
    runs = sorted((sweep / "sweep-toy").iterdir())
    (runs[0] / "summary.json").write_bytes((runs[0] / "summary.json").read_bytes()[:40])
    summary = json.loads((runs[1] / "summary.json").read_text())
    (runs[1] / "summary.json").write_text(json.dumps({**summary, "status": "done?"}))
    before = len(toy.lines())
    result = runner.invoke(app, ["sweep", "--resume", str(sweep), "--import", "fmlab_sweep_toy",
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        json.loads(
            result.stdout.splitlines()[-1] if False else result.stdout[result.stdout.index("{") :]
        )["ran"]
        == 2
    )
    rerun = sorted(parts[1] for parts in toy.lines()[before:] if parts[0] == "start")
    assert rerun == sorted([runs[0].name, runs[1].name])
    for run in runs[:2]:
        kept = list(run.glob(".quarantine-*/summary.json"))
        assert len(kept) == 1 and (kept[0].parent / "REASON.txt").exists()
        assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert not list(runs[2].glob(".quarantine-*"))
