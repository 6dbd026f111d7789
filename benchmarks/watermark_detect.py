"""KGW detection speed: fmlab's detector / ``transformers``' ``WatermarkDetector``, same
token ids, same scheme (lefthash, γ = 0.25), same counts (checked before timing).

Both detectors are built fresh for every call, so neither carries a cache between
repeats: ``transformers`` keys its ``lru_cache`` on tensors, which hash by identity, so it
re-draws a ``randperm`` of the vocabulary for every scored token; fmlab draws one per
distinct previous token and tests membership for all tokens at once. fmlab's own keyed
seeding (a keyed pseudo-random permutation, a few hashes per token) is timed too. The
ratio is tokens/s of fmlab over tokens/s of transformers.

Two kinds of ids: ``uniform`` (every previous token distinct: nothing to share, the worst
case for fmlab's lefthash) and ``zipf`` (token ranks drawn from Zipf's law with exponent
1.1, as word frequencies roughly are, so common previous tokens recur).

Run: ``python benchmarks/watermark_detect.py [--vocab 50257 --batch 8 --length 512]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import emit, interleaved, ratio, report, row, speedup

from fmlab.watermark import KGW


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=50257, help="GPT-2's vocabulary size")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dedupe", action="store_true", help="score repeated bigrams once")
    ap.add_argument("--ids", choices=["uniform", "zipf"], default="uniform")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from transformers import GPT2Config, WatermarkDetector, WatermarkingConfig

    key, V = 15485863, args.vocab
    config = GPT2Config(vocab_size=V, bos_token_id=V - 1)
    wm = WatermarkingConfig(greenlist_ratio=0.25, hashing_key=key, seeding_scheme="lefthash")
    shape = (args.batch, args.length)
    if args.ids == "zipf":
        rng = np.random.default_rng(0)
        ranks = rng.zipf(1.1, size=(args.batch * args.length * 4,)).reshape(-1)
        ids = torch.from_numpy(
            (ranks[ranks < V - 1][: args.batch * args.length] - 1).reshape(shape)
        )
    else:
        ids = torch.randint(0, V - 1, shape, generator=torch.Generator().manual_seed(0))
    ids_np = ids.numpy()

    def theirs():
        det = WatermarkDetector(config, "cpu", wm, ignore_repeated_ngrams=args.dedupe)
        return det(ids, return_dict=True)

    def ours():
        return KGW(V, 0.25, 2.0, "lefthash").detect_batch(ids_np, key, 0, dedupe=args.dedupe)

    def ours_keyed():
        return KGW(V, 0.25, 2.0, "keyed").detect_batch(ids_np, key, 0, dedupe=args.dedupe)

    a, b = theirs(), ours()
    assert np.array_equal(a.num_green_tokens, b["green"]), "the detectors disagree"
    assert np.array_equal(a.num_tokens_scored, b["n"])
    times = interleaved(
        {"transformers": theirs, "fmlab lefthash": ours, "fmlab keyed": ours_keyed},
        args.repeats,
    )
    tokens = int(b["n"].sum())
    report(
        f"KGW detection, vocabulary {V}, {args.batch} × {args.length} {args.ids} tokens"
        + (" (repeats once)" if args.dedupe else ""),
        times,
        {
            "tokens_scored": tokens,
            "speedup_lefthash": round(ratio(times, "transformers", "fmlab lefthash"), 1),
            "speedup_keyed": round(ratio(times, "transformers", "fmlab keyed"), 1),
        },
    )
    what = f"{args.ids} ids, V {V}" + (", dedupe" if args.dedupe else "")
    emit(
        "watermark_detect",
        [
            row(f"KGW lefthash detect / transformers ({what})",
                speedup(times, "transformers", "fmlab lefthash"), ">= 1.0"),
            row(f"KGW keyed detect / transformers ({what})",
                speedup(times, "transformers", "fmlab keyed")),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
