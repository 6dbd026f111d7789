"""``sweep.json``: a sweep's spec and run list, saved with its runs.

The record lets ``fmlab status`` and ``fmlab table`` work from the directory alone
(without re-resolving configs), lets a worker check that it sees the driver's directory
(``sweep_id``), and lets a resumed sweep notice that its spec changed: resuming with a
different spec — or with a study whose presets changed, so that run ids differ — is
refused with the list of differences unless ``allow_changed``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from fmlab.config import flatten
from fmlab.contracts import CorruptFileError, SweepFile, read_json
from fmlab.errors import UserInputError
from fmlab.lease import create_exclusive
from fmlab.store import atomic_write_json, json_safe, skip
from fmlab.sweep.spec import SweepPlan
from fmlab.sweep.worker import SWEEP_FILE
from fmlab.version import __version__


class SweepChanged(UserInputError):
    """A resumed sweep's spec differs from the saved one."""


def sweep_dir(out: Path | str, name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise UserInputError(
            f"--name {name!r}: use a plain directory name (no '/', no leading '.')"
        )
    return Path(out) / "sweeps" / name


def new_record(p: SweepPlan, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "sweep_id": uuid.uuid4().hex,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "fmlab": __version__,
        "study": p.study.name,
        "spec": p.spec.model_dump(mode="json"),
        "seed_key": p.seed_key if p.spec.seeds else None,
        "swept": p.swept_keys,
        "metrics": list(dict.fromkeys(c.metric for c in p.study.claims)),
        "runs": [{"run_id": pt.run_id, "values": json_safe(pt.values)} for pt in p.points],
    }


def read_record(directory: Path) -> dict[str, Any]:
    """The sweep's record; a missing one is "not a sweep directory", a corrupt one a
    CorruptFileError naming it."""
    data = read_json(Path(directory) / SWEEP_FILE, SweepFile)
    if data is None:
        raise UserInputError(f"{directory} is not a sweep directory (no {SWEEP_FILE})")
    return data


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two records' specs and run lists."""
    a, b = flatten(old["spec"]), flatten(new["spec"])
    lines = []
    for key in sorted(set(a) | set(b)):
        if key == "imports" or a.get(key) == b.get(key):
            continue
        shown = (json.dumps(d[key]) if key in d else "(absent)" for d in (a, b))
        lines.append(f"{key}: {' → '.join(shown)}")
    old_ids = {r["run_id"] for r in old["runs"]}
    new_ids = {r["run_id"] for r in new["runs"]}
    if old_ids != new_ids:
        why = "" if lines else " (same spec: the study's preset or config defaults changed)"
        lines.append(
            f"runs: {len(new_ids - old_ids)} new, {len(old_ids - new_ids)} no longer in the "
            f"sweep{why}"
        )
    return lines


def open_sweep(p: SweepPlan, directory: Path, *, allow_changed: bool = False) -> dict[str, Any]:
    """Create ``sweep.json`` (atomically: of two drivers starting at once, one creates it
    and the other adopts it) or check that the saved spec matches; return the record."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fresh = new_record(p, directory.name)
    path = directory / SWEEP_FILE
    if create_exclusive(path, json.dumps(fresh, indent=2).encode()):
        return fresh
    try:
        old = read_record(directory)
    except CorruptFileError as e:
        if not allow_changed:
            raise CorruptFileError(
                e.path,
                f"{e.reason}. Pass --allow-changed to replace it with this command's "
                "spec (finished runs that are still in the sweep are kept)",
            ) from None
        kept = path.with_name(f".{SWEEP_FILE}.corrupt-{uuid.uuid4().hex[:8]}")
        os.replace(path, kept)
        skip(e, f"replacing it (the old file is kept as {kept.name})")
        atomic_write_json(path, fresh)
        return fresh
    diff = changes(old, fresh)
    if not diff:
        return old
    if not allow_changed:
        raise SweepChanged(
            f"sweep {directory} was started with a different spec:\n  "
            + "\n  ".join(diff)
            + "\nRerun the original command to resume it, pass --allow-changed to change it "
            "(finished runs that are still in the sweep are kept), or --name to start a new one."
        )
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    fresh["sweep_id"], fresh["created"] = old["sweep_id"], old["created"]
    fresh["history"] = [*old.get("history", []), {"changed": now, "changes": diff}]
    atomic_write_json(path, fresh)
    return fresh


def find_sweep(target: str | Path, out: Path | str = "runs") -> Path:
    """A sweep directory from a path or a name under ``out/sweeps`` (did-you-mean)."""
    path = Path(target)
    if (path / SWEEP_FILE).is_file():
        return path
    named = Path(out) / "sweeps" / str(target)
    if (named / SWEEP_FILE).is_file():
        return named
    known = sorted(p.parent.name for p in (Path(out) / "sweeps").glob(f"*/{SWEEP_FILE}"))
    close = difflib.get_close_matches(str(target), known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(known) or "(none)"
    raise UserInputError(
        f"no sweep {str(target)!r}: not a directory with {SWEEP_FILE}, nor a name under "
        f"{Path(out) / 'sweeps'}.{hint} Known sweeps there: {listing}."
    )
