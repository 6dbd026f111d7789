"""``fmlab unlock PATH``: break the leases of runs whose holder is gone.

A lease ends on its own when its holder dies on this host (its pid is checked) or when
its TTL runs out without a heartbeat; a holder that died on another host with a long
TTL blocks its runs until then. ``unlock`` releases such leases now; ``--force`` also
breaks live ones (their holders lose them, and may still finish and record their run).
"""

from __future__ import annotations

from pathlib import Path

import typer

from fmlab.cli.app import app, emit_json, fail, friendly, out, plain


def _leased_dirs(root: Path) -> list[Path]:
    from fmlab.store import LEASE_PREFIX

    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory (give a run, sweep or runs directory)")
    found = {p.parent for p in root.rglob(f"{LEASE_PREFIX}*") if p.parent.is_dir()}
    return sorted(found)


@app.command()
@friendly
def unlock(
    path: Path = typer.Argument(..., help="a run directory, a sweep directory or a runs root"),
    force: bool = typer.Option(False, "--force", help="also break leases of live holders"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Break the leases of runs whose holder is gone (a dead host); list the live ones."""
    from fmlab.lease import break_lease, current_lease, describe

    rows = []
    for run_dir in _leased_dirs(path):
        info = current_lease(run_dir)
        if info is None or info.mtime <= 0:
            continue
        live = info.live()
        broken = break_lease(run_dir, force=force) is not None
        rows.append({"run": str(run_dir), "holder": describe(info), "live": live, "broken": broken})
    if as_json:
        return emit_json({"leases": rows})
    if not rows:
        out.print(plain(f"no held leases under {path}"))
    for r in rows:
        verb = "broke" if r["broken"] else "kept (live; --force breaks it)"
        out.print(plain(f"{verb}: {r['run']} — {r['holder']}"))
    if any(r["live"] and not r["broken"] for r in rows):
        raise fail("some leases are held by live processes; nothing was done to them", 1)
