"""Promise 7: every mistake a user can type is one clear line. A few hundred generated bad
invocations of every command: no traceback, an exit code other than 0, and a message that
names the argument (its option, its field or its value)."""

from __future__ import annotations

from typer.testing import CliRunner

from fmlab.cli import app

runner = CliRunner()

BAD_INT = ["abc", "-5", "1.5", "", "1e400", "nan", "[red]9", "0x"]
BAD_FLOAT = ["abc", "", "nan", "inf", "-inf", "1e999", ":fire:"]
BAD_NAME = ["nope", "[red]x", ":fire:", "", "a/b", "../x", "x" * 300, "ünï"]
BAD_SET = ["noequals", "=1", "model.d_modle=1", "model.d_model=abc", "unknown.field=1",
           "train.lr=inf", "train.lr=nan", "seed=1e999", "train.steps=-1", "model=3",
           "model.mixer=nope", "model.d_state=4", "[red]=1", "train..lr=1"]  # fmt: skip
BAD_AXIS = ["x", "=1", "seed=", "train.lr=", "unknown=1,2", "train.lr=1,abc", "seed=[1,"]
BAD_RANDOM = ["lr=normal:0:1", "train.lr=uniform:1:0", "train.lr=loguniform:0:1",
              "train.lr=uniform:a:b", "train.lr", "=uniform:0:1"]  # fmt: skip


def _set_words(v: str) -> list[str]:
    """An override is named by itself, its key, or one of the key's dotted parts."""
    key = v.split("=")[0]
    return [v, key, "override", *(f"{part}:" for part in key.split(".") if part)]


READERS = (
    ["show"],
    ["report"],
    ["unlock"],
    ["fit", "chinchilla"],
    ["fit", "isoflop"],
    ["fit", "power-law", "--x-col", "N", "--y-col", "L"],
)


def _cases(tmp_path) -> list[tuple[list[str], list[str]]]:
    """(argv, words of which the message must contain one)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    bad_out = str(a_file / "runs")  # a path under a file: never creatable
    missing = str(tmp_path / "missing")
    cases: list[tuple[list[str], list[str]]] = []
    run = ["run", "grokking", "-p", "smoke", "--out", str(tmp_path / "r")]
    for v in BAD_INT:
        cases.append(([*run, "--threads", v], ["--threads", v]))
    for v in BAD_NAME:
        cases.append((["run", v or "''", "--out", str(tmp_path / "r")], ["study", v]))
        cases.append(([*run[:2], "-p", v], ["preset", v]))
        cases.append(([*run, "--import", v], ["--import", v]))
    for v in BAD_SET:
        cases.append(([*run, "--set", v], _set_words(v)))
    cases.append((["run", "grokking", "-p", "smoke", "--out", bad_out], ["a-file"]))
    sweep = ["sweep", "grokking", "-p", "smoke", "--out", str(tmp_path / "s")]
    for v in BAD_AXIS:
        cases.append(([*sweep, "--grid", v], ["--grid", v, v.split("=")[0]]))
        cases.append(([*sweep, "--zip", v], ["--zip", v, v.split("=")[0]]))
    for v in BAD_RANDOM:
        cases.append(([*sweep, "--random", v, "--samples", "2"], ["random", v.split("=")[0]]))
    for v in BAD_INT:
        for flag in ("--jobs", "--seeds", "--threads", "--ensemble-size", "--slurm-time"):
            cases.append(([*sweep, flag, v], [flag, v]))
    for v in BAD_FLOAT:
        cases.append(([*sweep, "--lease-ttl", v], ["--lease-ttl", v]))
        cases.append(([*sweep, "-e", "slurm", "--slurm-mem", v], ["--slurm-mem", v]))
    for v in ["", "a/b", "../x", ".hidden", "x" * 300]:
        cases.append(([*sweep, "--name", v], ["--name", v[:40]]))
    for v in BAD_NAME:
        cases.append(([*sweep, "-e", v], ["executor", v]))
        cases.append(([*sweep, "--ensemble", v], ["--ensemble", v]))
        cases.append(([*sweep, "-e", "slurm", "--slurm-cluster", v], ["--slurm-cluster", v]))
        cases.append(([*sweep, "-e", "slurm", "--slurm-opt", v], ["--slurm-opt", v]))
        gone = f"gone-{v}"  # never a sweep (others here may create sweeps named v)
        cases.append((["sweep", "--resume", gone, "--out", str(tmp_path / "s")], ["sweep"]))
        cases.append((["status", gone, "--out", str(tmp_path / "s")], ["sweep"]))
        cases.append((["table", gone, "--out", str(tmp_path / "s")], ["sweep"]))
        cases.append((["reproduce", "--suite", v, "--out", str(tmp_path / "r")], ["suite", v]))
        cases.append((["inspect", "tiny-gpt2", "-i", v, "--out", str(tmp_path / "i")],
                      ["instrument", v]))  # fmt: skip
        cases.append((["inspect", v or "''", "--out", str(tmp_path / "i")], ["model", v]))
    cases.append(([*sweep, "--ray-return"], ["--ray-return"]))
    cases.append(([*sweep, "-e", "serial", "-j", "2"], ["-j", "serial"]))
    for path in (missing, str(a_file)):
        for cmd in READERS:
            cases.append(([*cmd, path], [path.rsplit("/", 1)[-1], "run", "CSV", "sweep"]))
    for v in BAD_SET:
        cases.append(([*sweep, "--set", v], _set_words(v)))
        cases.append((["inspect", "tiny-gpt2", "--out", str(tmp_path / "i"), "--set", v],
                      _set_words(v)))  # fmt: skip
    csv = tmp_path / "runs.csv"
    rows = [(n, d, 1.7 + 400 / n**0.34 + 400 / d**0.28) for n in (1e6, 4e6, 1.6e7)
            for d in (2e8, 8e8, 3.2e9)]  # fmt: skip
    csv.write_text("N,D,loss\n" + "".join(f"{n},{d},{loss}\n" for n, d, loss in rows))
    for v in BAD_INT:
        cases.append((["fit", "chinchilla", str(csv), "--bootstrap", v], ["--bootstrap", v]))
        cases.append((["reproduce", "-j", v, "--out", str(tmp_path / "r")], ["-j", v]))
    for v in BAD_FLOAT:
        cases.append((["fit", "chinchilla", str(csv), "--confidence", v], ["--confidence", v]))
        cases.append((["fit", "chinchilla", str(csv), "--huber-delta", v], ["--huber-delta", v]))
    degenerate = {
        "empty": b"",
        "header-only": b"N,D,loss\n",
        "one-row": b"N,D,loss\n1e6,2e7,3.1\n",
        "nan": b"N,D,loss\nnan,nan,nan\nnan,nan,nan\nnan,nan,nan\n",
        "text": b"N,D,loss\na,b,c\nd,e,f\ng,h,i\n",
        "negative": b"N,D,loss\n-1,-2,-3\n-4,-5,-6\n-1,-5,-6\n",
        "binary": bytes(range(256)) * 4,
        "no-header": b"1,2,3\n4,5,6\n",
        "ragged": b"N,D,loss\n1,2\n3,4,5,6,7\n",
    }
    for label, content in degenerate.items():
        bad = tmp_path / f"deg-{label}.csv"
        bad.write_bytes(content)
        for cmd in READERS[3:]:
            cases.append(([*cmd, str(bad)], [bad.name, "column", "row", "points", "runs"]))
    for flag in ("--frobnicate", "--threadz", "-Z"):
        for cmd in (["run", "grokking"], ["sweep", "grokking"], ["list"], ["fit", "chinchilla"]):
            cases.append(([*cmd, flag], [flag]))
    return cases


def test_generated_bad_invocations_fail_cleanly_naming_the_argument(tmp_path):
    cases = _cases(tmp_path)
    assert len(cases) >= 300
    problems = []
    for argv, words in cases:
        result = runner.invoke(app, argv)
        text = result.output
        clean = result.exception is None or isinstance(result.exception, SystemExit)
        named = any(w and w.strip() and w in text for w in words)
        if result.exit_code == 0 or not clean or "Traceback" in text or not named:
            problems.append((argv, result.exit_code, repr(result.exception), text[-300:]))
    assert problems == [], "\n".join(map(str, problems))
