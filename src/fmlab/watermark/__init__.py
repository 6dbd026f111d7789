"""Watermarks for generated text: generate, detect, attack (docs/watermark.md).

    from fmlab.watermark import KGW, Gumbel, SynthID, generate, gpt_next
    kgw = KGW(vocab_size=32, gamma=0.5, delta=2.0)            # Kirchenbauer et al. 2023
    out = generate(gpt_next(model, 8), prompts, 200, kgw, keys, generator=gen)
    det = kgw.detect(out.tokens[0], key=int(keys[0]), start=out.prompt_len)
    det.z, det.p_value, det.verdict()

One module per scheme (:mod:`.kgw`, :mod:`.gumbel`, :mod:`.synthid`), each a generate-time
step on next-token log-probabilities and a detector on token ids; :mod:`.detect` holds
the scoring rules and exact null distributions, :mod:`.theory` the exact quantities
(spike entropy, Theorem 4.2's bound, KL), :mod:`.attacks` substitution and span
re-sampling, :mod:`.prf` the keyed pseudo-random function.
"""

from fmlab.watermark.detect import FPR_PAPER, Z_PAPER, Detection
from fmlab.watermark.generate import Generation, generate, gpt_next, hf_next, hf_processor
from fmlab.watermark.gumbel import Gumbel
from fmlab.watermark.kgw import KGW
from fmlab.watermark.synthid import SynthID

SCHEMES = ("kgw", "gumbel", "synthid")


def make_scheme(
    name: str,
    vocab_size: int,
    *,
    gamma: float = 0.25,
    delta: float = 2.0,
    seeding: str = "keyed",
    context_width: int | None = None,
    depth: int = 8,
) -> KGW | Gumbel | SynthID:
    """A scheme by name with its options (``context_width`` None: the scheme's default —
    1 for KGW, 4 for Gumbel, 3 for SynthID, whose n-gram is context + 1)."""
    if name == "kgw":
        return KGW(vocab_size, gamma, delta, seeding, context_width or 1)  # type: ignore[arg-type]
    if name == "gumbel":
        return Gumbel(vocab_size, context_width or 4)
    if name == "synthid":
        return SynthID(vocab_size, ngram_len=(context_width or 3) + 1, depth=depth)
    raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}; got {name!r}")


__all__ = [
    "FPR_PAPER",
    "KGW",
    "SCHEMES",
    "Z_PAPER",
    "Detection",
    "Generation",
    "Gumbel",
    "SynthID",
    "generate",
    "gpt_next",
    "hf_next",
    "hf_processor",
    "make_scheme",
]
