"""Memory requests are checked before the big allocations: refused in one line that says
the limit and how to raise it, instead of an allocator traceback or a stalled machine."""

from __future__ import annotations

import time

import pytest
import torch

from fmlab.errors import UserInputError
from fmlab.limits import ResourceLimitError, check_memory, memory_budget
from fmlab.models import GPT, GPTConfig


def test_the_budget_is_80_percent_of_memory_or_the_environment(monkeypatch):
    monkeypatch.delenv("FMLAB_MEMORY_LIMIT", raising=False)
    from fmlab.limits import physical_memory

    assert memory_budget() == int(0.8 * physical_memory())
    for text, expected in [("512M", 512 * 2**20), ("64G", 64 * 2**30), ("1.5GiB", 1.5 * 2**30),
                           ("1000", 1000)]:  # fmt: skip
        monkeypatch.setenv("FMLAB_MEMORY_LIMIT", text)
        assert memory_budget() == int(expected)
    monkeypatch.setenv("FMLAB_MEMORY_LIMIT", "lots")
    with pytest.raises(UserInputError, match="FMLAB_MEMORY_LIMIT='lots'"):
        memory_budget()


def test_a_huge_gpt_is_refused_at_once_naming_the_limit_and_the_override(monkeypatch):
    monkeypatch.setenv("FMLAB_MEMORY_LIMIT", "1G")
    cfg = GPTConfig(d_model=4096, n_layers=64, n_heads=32, d_mlp=16384)
    started = time.perf_counter()
    with pytest.raises(ResourceLimitError, match=r"more than the 1 GiB .*FMLAB_MEMORY_LIMIT"):
        GPT(cfg, vocab_size=50_000, seq_len=2048, generator=torch.Generator())
    assert time.perf_counter() - started < 1.0  # refused before allocating anything


def test_the_estimate_is_close_to_the_real_parameter_count():
    for mixer in ("attention", "ssm", "hyena", "linear_attention"):
        cfg = GPTConfig(d_model=64, n_layers=2, n_heads=4, d_mlp=256, mixer=mixer)
        model = GPT(cfg, vocab_size=100, seq_len=32, generator=torch.Generator().manual_seed(0))
        real = sum(p.numel() for p in model.parameters())
        assert 0.5 < cfg.approx_params(100, 32) / real < 2.0, mixer


def test_check_memory_passes_what_fits():
    check_memory("a small thing", 1024)
