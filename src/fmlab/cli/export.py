"""``fmlab export RUN_DIR OUT_DIR``: a run's GPT as a Hugging Face ``GPT2LMHeadModel``.

The directory holds ``config.json``, ``model.safetensors`` and a word-level tokenizer
(``t0`` … ``t{V-1}``), so ``transformers``, ``peft`` and ``fmlab inspect OUT_DIR`` read it;
:func:`fmlab.models.hf.export.load_gpt` reads it back into fmlab. Only configs that map
exactly are exported (:mod:`fmlab.models.hf.export` says which); others are refused in
one line.
"""

from __future__ import annotations

from pathlib import Path

import typer

from fmlab.cli.app import app, emit_json, friendly, out, plain


@app.command()
@friendly
def export(
    run_dir: Path = typer.Argument(..., help="a run directory with saved GPT weights"),
    out_dir: Path = typer.Argument(..., help="where to write the transformers model"),
    weights: str | None = typer.Option(
        None, "--weights", "-w", help="which artifacts/<name>.safetensors, if it has several"
    ),
    as_json: bool = typer.Option(False, "--json", help="print what was written as JSON"),
) -> None:
    """Write a run's GPT as a transformers GPT2LMHeadModel directory (exact: same logits)."""
    from fmlab.models.hf.export import describe, export_run

    path = export_run(run_dir, out_dir, weights)
    info = {"path": str(path), **describe(path)}
    if as_json:
        return emit_json(info)
    arch = ", ".join(info["architectures"] or [])
    out.print(plain(f"wrote {arch} ({info['n_layer']} layers, width {info['n_embd']}, "
                    f"vocabulary {info['vocab_size']}) to {path}"))  # fmt: skip
