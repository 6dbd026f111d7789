"""SynthID-Text (Dathathri et al. 2024, Nature 634: "Scalable watermarking for
identifying large language model outputs") through ``transformers``' own
``SynthIDTextWatermarkLogitsProcessor`` — fmlab does not reimplement it.

Generation is the processor's tournament sampling: ``depth`` layers, each with its own
key, reweight ``p`` by ``1 + g - E_p[g]`` where ``g ∈ {0, 1}`` is looked up from a hash of
the last ``ngram_len`` tokens (context and candidate) in a random 0/1 table. Over keys
each layer leaves ``E[p']`` = ``p`` (the reweighting is linear in ``g``), so the scheme is
distortion-free per step in expectation, like the Gumbel one. Contexts already seen in
the text are not watermarked.

Detection, offline and without training. ``transformers``' ``SynthIDTextWatermarkDetector``
needs a *trained* ``BayesianDetectorModel`` (its example downloads one from the Hub; the
paper trains it on watermarked and unwatermarked text). The paper's unweighted "mean"
score needs nothing: without the watermark every g-value of a distinct context is an
independent Bernoulli(q), q the mean of the processor's sampling table (≈ 0.5), so the
sum of the ``n·depth`` g-values of ``n`` scored tokens is exactly Binomial(n·depth, q).
fmlab takes the g-values from ``processor.compute_g_values`` and tests that sum. The
trained Bayesian score is stronger; it could be trained here on generated text, which
fmlab does not do yet.

Generation here starts the processor's context from the prompt (``transformers``'
``generate`` starts it from zeros, so its first ``ngram_len - 1`` tokens are watermarked
with contexts no detector can rebuild; detect generated-only ids then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from fmlab.watermark import prf
from fmlab.watermark.detect import (
    FPR_PAPER,
    Detection,
    binomial_test,
    min_tokens_binomial,
    scored_mask,
)


@dataclass(frozen=True)
class SynthID:
    vocab_size: int
    ngram_len: int = 4
    depth: int = 8
    sampling_table_size: int = 2**16
    sampling_table_seed: int = 0
    context_history_size: int = 1024
    _processors: dict = field(default_factory=dict, compare=False, repr=False)

    name: ClassVar[str] = "synthid"

    def __post_init__(self) -> None:
        if self.ngram_len < 2:
            raise ValueError(f"ngram_len must be >= 2, got {self.ngram_len}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")

    @property
    def context_width(self) -> int:
        return self.ngram_len - 1

    def layer_keys(self, key: int) -> list[int]:
        """The ``depth`` per-layer keys ``transformers`` takes, derived from one key
        (non-negative int64s)."""
        return [int(k >> np.uint64(1)) for k in prf.derive_keys(key, self.depth)]

    def processor(self, key: int, *, fresh: bool = False) -> Any:
        """``transformers``' processor for ``key`` (cached unless ``fresh``: generation
        needs its own, since the processor keeps state)."""
        if not fresh and key in self._processors:
            return self._processors[key]
        from transformers.generation.logits_process import SynthIDTextWatermarkLogitsProcessor

        proc = SynthIDTextWatermarkLogitsProcessor(
            ngram_len=self.ngram_len,
            keys=self.layer_keys(key),
            sampling_table_size=self.sampling_table_size,
            sampling_table_seed=self.sampling_table_seed,
            context_history_size=self.context_history_size,
            device=torch.device("cpu"),
        )
        if not fresh:
            self._processors[key] = proc
        return proc

    def null_rate(self, key: int) -> float:
        """q: the probability of g = 1 without a watermark (the sampling table's mean)."""
        return float(self.processor(key).sampling_table.double().mean())

    def start(self, prompts: torch.Tensor, key: int) -> Any:
        """A processor whose context is the prompts' last ``ngram_len - 1`` tokens, ready to
        be called at the first generated position (prompts shorter than that are padded
        with 0 on the left, as ``transformers`` starts)."""
        proc = self.processor(key, fresh=True)
        B = prompts.shape[0]
        proc._init_state(B)
        padded = torch.cat([torch.zeros(B, self.ngram_len, dtype=torch.long), prompts.cpu()], 1)
        proc.state.context = padded[:, -self.ngram_len : -1].clone()
        return proc

    @staticmethod
    def reweight(proc: Any, ids: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
        """The processor's watermarked log-probabilities after ``ids`` (it steps its state)."""
        return proc(ids.cpu(), logprobs.float().cpu()).double()

    def detect_batch(
        self,
        ids: Any,
        key: int,
        start: int | np.ndarray = 0,
        *,
        dedupe: bool = True,
        lengths: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Mean-score detection of every row with one key: ``n`` scored tokens,
        ``g_sum`` over them and the layers, ``z``/``p_value`` against Binomial(n·depth, q)."""
        ids = np.asarray(ids, dtype=np.int64)
        B, L = ids.shape
        h = self.context_width
        flags = np.full((B, L), np.nan)
        sums = np.zeros((B, L))
        if h < L:
            g = self.processor(key).compute_g_values(torch.from_numpy(ids)).double().numpy()
            sums[:, h:] = g.sum(-1)
            flags[:, h:] = g.mean(-1)
        scored = scored_mask(ids, start, h, dedupe=dedupe, include_token=False, lengths=lengths)
        n = scored.sum(1)
        total = np.where(scored, sums, 0.0).sum(1)
        test = binomial_test(total, n * self.depth, self.null_rate(key))
        return {"flags": flags, "scored": scored, "n": n, "g_sum": total} | test

    def detect(
        self, ids: Any, key: int, start: int = 0, *, dedupe: bool = True, fpr: float = FPR_PAPER
    ) -> Detection:
        ids = np.asarray(ids, dtype=np.int64).reshape(1, -1)
        r = self.detect_batch(ids, key, start, dedupe=dedupe)
        per_token = [
            float(f) if s else None for f, s in zip(r["flags"][0], r["scored"][0], strict=True)
        ]
        n, q = int(r["n"][0]), self.null_rate(key)
        return Detection(
            scheme=self.name,
            n_tokens=ids.shape[1],
            n_scored=n,
            statistic=float(r["g_sum"][0]),
            expected=q * n * self.depth,
            z=float(r["z"][0]),
            p_value=float(r["p_value"][0]),
            p_normal=float(r["p_normal"][0]),
            min_tokens=min_tokens_binomial(q, fpr, per_token=self.depth),
            fpr=fpr,
            per_token=per_token,
        )
