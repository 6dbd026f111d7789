"""A byte-level tokenizer for tiny models that have no trained one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class ByteTokenizer:
    """UTF-8 bytes as tokens (ids 0–255; pad 256, bos 257, eos 258), for tiny models
    that have no trained tokenizer. Callable like a transformers tokenizer."""

    vocab_size = 259
    pad_token_id, bos_token_id, eos_token_id = 256, 257, 258

    def __call__(
        self,
        texts: str | Sequence[str],
        *,
        padding: bool = True,
        truncation: bool = True,
        max_length: int | None = None,
        return_tensors: str = "pt",
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        rows = [list(t.encode()) for t in texts]
        if truncation and max_length:
            rows = [r[:max_length] for r in rows]
        T = max(map(len, rows), default=0)
        ids = torch.full((len(rows), T), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(rows), T, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r, dtype=torch.long), 1
        return {"input_ids": ids, "attention_mask": mask}

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i < 256).decode(errors="replace")
