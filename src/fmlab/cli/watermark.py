"""``fmlab watermark generate | detect``: watermark a model's text with a key, and test a
text for the watermark (docs/watermark.md).

    fmlab watermark generate tiny-gpt2 --scheme kgw --key 42 --prompt "Once upon" --json > out.json
    fmlab watermark detect tiny-gpt2 out.json --scheme kgw --key 42 --html view.html
    fmlab watermark detect tiny-gpt2 "some text" --scheme kgw --key 42 --json

Detection loads only the tokenizer and the vocabulary size, never the weights. A text is
a string, a text file, or the JSON ``generate --json`` writes (its token ids are used
as they are, so nothing is lost to re-tokenization, and its prompt is excluded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fmlab.cli.app import DEVICE, app, emit_json, err, fail, friendly, out, plain, say

watermark_app = typer.Typer(
    help="Watermark generated text and detect it: KGW (Kirchenbauer et al. 2023), the "
    "Gumbel scheme (Aaronson 2022), SynthID-Text (transformers' processor).",
    no_args_is_help=True,
)
app.add_typer(watermark_app, name="watermark")

MODEL = typer.Argument(..., help="tiny-gpt2|opt|llama, a model directory or a cached hub id")
SCHEME = typer.Option("kgw", "--scheme", help="kgw | gumbel | synthid")
KEY = typer.Option(..., "--key", help="the secret key (an integer below 2^64)")
GAMMA = typer.Option(0.25, "--gamma", min=0.0, max=1.0, help="KGW: green-list fraction γ")
DELTA = typer.Option(2.0, "--delta", min=0.0, help="KGW: bias δ added to green logits")
SEEDING = typer.Option(
    "keyed", "--seeding", help="KGW: keyed (every context keyed) | lefthash (transformers')"
)
CONTEXT = typer.Option(
    None, "--context-width", min=1, help="tokens hashed with the key [kgw 1, gumbel 4, synthid 3]"
)
DEPTH = typer.Option(8, "--depth", min=1, help="SynthID: tournament layers")
UNSAFE = typer.Option(False, "--allow-unsafe-pickle", help="load pickle weights (weights_only)")
REMOTE = typer.Option(False, "--trust-remote-code", help="run the model's own Python code")
JSON = typer.Option(False, "--json", help="print the result as JSON")


def _scheme(name: str, vocab: int, gamma, delta, seeding, context_width, depth) -> Any:
    from fmlab.errors import UserInputError
    from fmlab.watermark import SCHEMES, make_scheme

    if name not in SCHEMES:
        raise UserInputError(f"--scheme must be one of {', '.join(SCHEMES)}; got {name!r}")
    if seeding not in ("keyed", "lefthash"):
        raise UserInputError(f"--seeding must be keyed or lefthash; got {seeding!r}")
    try:
        return make_scheme(
            name,
            vocab,
            gamma=gamma,
            delta=delta,
            seeding=seeding,
            context_width=context_width,
            depth=depth,
        )
    except ValueError as e:
        raise UserInputError(str(e)) from None


def _key(key: int) -> int:
    from fmlab.errors import UserInputError

    if not 0 <= key < 2**64:
        raise UserInputError(f"--key must be an integer in [0, 2^64); got {key}")
    return key


@watermark_app.command("generate")
@friendly
def generate_cmd(
    model: str = MODEL,
    prompt: str = typer.Option(..., "--prompt", help="the text to continue"),
    scheme: str = typer.Option("kgw", "--scheme", help="kgw | gumbel | synthid | none"),
    key: int = typer.Option(0, "--key", help="the secret key (an integer below 2^64)"),
    max_new_tokens: int = typer.Option(100, "--max-new-tokens", min=1, max=100_000),
    gamma: float = GAMMA,
    delta: float = DELTA,
    seeding: str = SEEDING,
    context_width: int | None = CONTEXT,
    depth: int = DEPTH,
    seed: int = typer.Option(0, "--seed", help="sampling seed (and a tiny model's init)"),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="also write the JSON here"),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="torch threads (default: the cores not busy)"
    ),
    device: str = DEVICE,
    allow_unsafe_pickle: bool = UNSAFE,
    trust_remote_code: bool = REMOTE,
    as_json: bool = JSON,
) -> None:
    """Continue a prompt with a watermark (``--scheme none``: without one)."""
    import torch

    from fmlab.device import use
    from fmlab.errors import UserInputError
    from fmlab.parallel import default_threads
    from fmlab.watermark import generate, hf_next
    from fmlab.watermark.hf import causal_lm

    _key(key)
    torch.set_num_threads(threads or default_threads())
    with use(device):
        lm, vocab = causal_lm(
            model,
            seed=seed,
            allow_unsafe_pickle=allow_unsafe_pickle,
            trust_remote_code=trust_remote_code,
        )
        arm = (
            None
            if scheme == "none"
            else _scheme(scheme, vocab.vocab_size, gamma, delta, seeding, context_width, depth)
        )
        ids = vocab.encode(prompt)
        need = 1 if arm is None else arm.context_width
        if len(ids) < need:
            raise UserInputError(
                f"the prompt has {len(ids)} token(s); {scheme} hashes {need} token(s) of "
                "context, so give a longer prompt"
            )
        gen = torch.Generator().manual_seed(seed)
        result = generate(hf_next(lm), torch.tensor([ids]), max_new_tokens, arm, key, generator=gen)
    all_ids = result.tokens[0].tolist()
    record = {
        "model": model,
        "scheme": scheme,
        "settings": {} if arm is None else _settings(arm),
        "prompt": prompt,
        "prompt_len": len(ids),
        "text": vocab.decode(all_ids[len(ids) :]),
        "ids": all_ids,
    }
    if out_file is not None:
        out_file.write_text(json.dumps(record, indent=2) + "\n")
    if as_json:
        emit_json(record)
    else:
        out.print(plain(record["text"]))
        say(err, "watermark:", "green", f"{scheme} {record['settings']} · {max_new_tokens} tokens")


def _settings(arm: Any) -> dict[str, Any]:
    fields = ("gamma", "delta", "seeding", "context_width", "ngram_len", "depth")
    return {f: getattr(arm, f) for f in fields if hasattr(arm, f)}


def _read_text(text: str, vocab: Any, prompt: str | None, prompt_tokens: int | None):
    """Token ids and the number of leading tokens not to score."""
    from fmlab.errors import UserInputError

    path = Path(text)
    if path.suffix in (".json", ".txt") and " " not in text and not path.exists():
        raise UserInputError(f"{text}: no such file (to score this string as text, add a space)")
    if len(text) < 4096 and path.is_file():
        raw = path.read_text(errors="replace")
        if path.suffix == ".json":
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as e:
                raise UserInputError(f"{path} is not valid JSON ({e.msg})") from None
            if isinstance(data, dict) and isinstance(data.get("ids"), list):
                ids = [int(i) for i in data["ids"]]
                start = (
                    prompt_tokens if prompt_tokens is not None else int(data.get("prompt_len", 0))
                )
                return ids, start
            if isinstance(data, dict) and isinstance(data.get("text"), str):
                raw = data["text"]
            else:
                raise UserInputError(f'{path}: expected {{"ids": [...]}} or {{"text": "..."}}')
        text = raw
    if prompt is not None:
        ids = vocab.encode(prompt + text)
        return ids, len(vocab.encode(prompt)) if prompt else 0
    return vocab.encode(text), prompt_tokens or 0


@watermark_app.command("detect")
@friendly
def detect_cmd(
    model: str = MODEL,
    text: str = typer.Argument(..., help="the text, a .txt file, or generate's .json"),
    scheme: str = SCHEME,
    key: int = KEY,
    gamma: float = GAMMA,
    delta: float = DELTA,
    seeding: str = SEEDING,
    context_width: int | None = CONTEXT,
    depth: int = DEPTH,
    prompt: str | None = typer.Option(None, "--prompt", help="a prompt before TEXT: not scored"),
    prompt_tokens: int | None = typer.Option(
        None, "--prompt-tokens", min=0, help="leading tokens not to score"
    ),
    fpr: float = typer.Option(
        3.17e-5, "--fpr", min=1e-300, max=0.5, help="false-positive rate to decide at (z=4)"
    ),
    dedupe: bool = typer.Option(True, "--dedupe/--count-repeats", help="score n-grams once"),
    html: Path | None = typer.Option(None, "--html", help="write a per-token colour view"),
    allow_unsafe_pickle: bool = UNSAFE,
    trust_remote_code: bool = REMOTE,
    as_json: bool = JSON,
) -> None:
    """Test TEXT for the watermark of KEY: z, exact p, tokens scored, a plain verdict."""
    from fmlab.errors import UserInputError
    from fmlab.watermark.hf import vocabulary

    _key(key)
    vocab = vocabulary(
        model, allow_unsafe_pickle=allow_unsafe_pickle, trust_remote_code=trust_remote_code
    )
    arm = _scheme(scheme, vocab.vocab_size, gamma, delta, seeding, context_width, depth)
    ids, start = _read_text(text, vocab, prompt, prompt_tokens)
    if ids and max(ids) >= vocab.vocab_size:
        raise UserInputError(
            f"token id {max(ids)} is outside {model}'s vocabulary of {vocab.vocab_size}"
        )
    det = arm.detect(ids, key, start, dedupe=dedupe, fpr=fpr)
    if html is not None:
        from fmlab.watermark.html import detection_html

        html.write_text(detection_html(det, vocab.pieces(ids), f"{scheme} detection · {model}"))
    if as_json:
        emit_json(det.to_dict() | {"model": model, "settings": _settings(arm)})
        if det.too_short:
            raise typer.Exit(2)
        return
    if det.too_short:
        raise fail(det.verdict())
    table = Table(title=f"{scheme} detection · {model}")
    table.add_column("")
    table.add_column("value")
    rows = [
        ("tokens (scored)", f"{det.n_tokens} ({det.n_scored})"),
        ("statistic (expected)", f"{det.statistic:.4g} ({det.expected:.4g})"),
        ("z", f"{det.z:.3f}"),
        ("p exact / normal", f"{det.p_value:.3g} / {det.p_normal:.3g}"),
    ]
    for a, b in rows:
        table.add_row(plain(a), plain(b))
    out.print(table)
    say(out, "verdict:", "bold green" if det.detected else "bold", det.verdict())
    if html is not None:
        say(err, "view:", "dim", str(html))
