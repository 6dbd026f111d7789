"""Dataset capture: reductions against direct computations, padding ignored, the memory
bound, and streaming to safetensors shards."""

from __future__ import annotations

import pytest
import torch

from fmlab.errors import UserInputError
from fmlab.hooks import capture, capture_dataset, reduce_activation


def test_reductions_against_explicit_loops():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    rows = [t[b][mask[b]] for b in range(3)]  # the real tokens of each sequence
    torch.testing.assert_close(
        reduce_activation(t, mask, "mean"), torch.stack([r.mean(0) for r in rows])
    )
    torch.testing.assert_close(
        reduce_activation(t, mask, "last"), torch.stack([r[-1] for r in rows])
    )
    torch.testing.assert_close(
        reduce_activation(t, mask, "first"), torch.stack([r[0] for r in rows])
    )
    torch.testing.assert_close(reduce_activation(t, mask, "tokens"), torch.cat(rows))
    assert reduce_activation(t, None, "mean").shape == (3, 4)
    assert reduce_activation(t, mask, "none") is t
    with pytest.raises(UserInputError, match="reduce must be one of"):
        reduce_activation(t, mask, "max")


def _bert(build_case):
    return build_case("bert").model


def _padded_batches(sentences: list[list[int]], batch_size: int):
    for i in range(0, len(sentences), batch_size):
        chunk = sentences[i : i + batch_size]
        T = max(map(len, chunk))
        ids = torch.zeros(len(chunk), T, dtype=torch.long)
        mask = torch.zeros(len(chunk), T, dtype=torch.long)
        for j, s in enumerate(chunk):
            ids[j, : len(s)], mask[j, : len(s)] = torch.tensor(s), 1
        yield {"input_ids": ids, "attention_mask": mask}


SENTENCES = [[5, 6, 7], [8, 9, 10, 11, 12], [13, 14], [15, 16, 17, 18], [19, 20, 21, 22, 23, 24]]
SITES = ["blocks.0.resid_post", "blocks.1.resid_post"]


def test_mean_pooling_ignores_padding(build_case):
    """A padded batch gives each sentence the mean it has when run alone."""
    model = _bert(build_case)
    acts = capture_dataset(model, _padded_batches(SENTENCES, 2), SITES, reduce="mean")
    assert acts.rows == len(SENTENCES)
    for k, s in enumerate(SENTENCES):
        alone = capture(model, {"input_ids": torch.tensor([s])}, SITES)
        for site in SITES:
            torch.testing.assert_close(acts[site][k], alone[site][0].mean(0), atol=1e-5, rtol=0)


def test_tokens_reduction_counts_real_tokens(build_case):
    model = _bert(build_case)
    acts = capture_dataset(model, _padded_batches(SENTENCES, 2), SITES, reduce="tokens")
    assert acts.rows == sum(map(len, SENTENCES))
    assert acts[SITES[0]].shape == (acts.rows, 32)


def test_memory_bound_is_a_clear_error(build_case):
    model = _bert(build_case)
    with pytest.raises(UserInputError, match=r"max_bytes=1,000.*shard_dir"):
        capture_dataset(
            model, _padded_batches(SENTENCES, 2), SITES, reduce="tokens", max_bytes=1000
        )


def test_sharded_capture_equals_in_memory(build_case, tmp_path):
    model = _bert(build_case)
    memory = capture_dataset(model, _padded_batches(SENTENCES, 2), SITES, reduce="tokens")
    disk = capture_dataset(
        model,
        _padded_batches(SENTENCES, 2),
        SITES,
        reduce="tokens",
        shard_dir=tmp_path / "acts",
        shard_bytes=1,  # one shard per batch
    )
    assert sorted(p.name for p in (tmp_path / "acts").glob("*.safetensors")) == [
        "shard_00000.safetensors",
        "shard_00001.safetensors",
        "shard_00002.safetensors",
    ]
    assert disk.rows == memory.rows
    for site in SITES:
        torch.testing.assert_close(disk[site], memory[site])
        assert sum(len(s) for s in disk.shards(site)) == memory.rows


def test_unreduced_batches_of_different_lengths_need_shards(build_case, tmp_path):
    model = _bert(build_case)
    with pytest.raises(UserInputError, match="reduce='none'"):
        capture_dataset(model, _padded_batches(SENTENCES, 2), SITES, reduce="none")
    acts = capture_dataset(
        model, _padded_batches(SENTENCES, 2), SITES, reduce="none", shard_dir=tmp_path
    )
    assert [tuple(s.shape) for s in acts.shards(SITES[0])] == [(2, 5, 32), (2, 4, 32), (1, 6, 32)]
    with pytest.raises(UserInputError, match="patterns"):
        capture_dataset(model, _padded_batches(SENTENCES, 2), ["blocks.0.attn.pattern"])
