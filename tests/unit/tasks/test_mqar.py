"""MQAR data (Arora et al. 2023): Zoology's layout, seeded and disjoint streams, the query-gap
power law, and accuracy on query positions only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from fmlab.config import ConfigError
from fmlab.tasks.mqar import IGNORE, MQARConfig, generate, make_data, query_accuracy


def small(**kw) -> MQARConfig:
    base = dict(vocab_size=32, seq_len=24, n_pairs=3, n_train=200, n_test=50)
    return MQARConfig(**{**base, **kw})


def test_layout_keys_values_queries_and_labels():
    cfg = small()
    d = make_data(cfg)
    V, N = cfg.vocab_size, cfg.n_pairs
    for x, y in zip(d.train_x, d.train_y, strict=True):
        keys, values = x[0 : 2 * N : 2], x[1 : 2 * N : 2]
        assert len(set(keys.tolist())) == N and len(set(values.tolist())) == N
        assert ((keys >= 1) & (keys < V // 2)).all() and ((values >= V // 2) & (values < V)).all()
        where = (y != IGNORE).nonzero()[:, 0]
        assert len(where) == N  # every key queried exactly once
        assert (where >= 2 * N).all() and ((where - 2 * N) % 2 == 0).all()
        for p in where.tolist():  # the query is a key; its label is that key's value
            i = keys.tolist().index(int(x[p]))
            assert int(y[p]) == int(values[i])
        rest = torch.ones_like(x, dtype=torch.bool)
        rest[: 2 * N] = False
        rest[where] = False
        assert (x[rest] == 0).all()  # the filler token without random_non_queries


def test_random_non_queries_fills_the_gaps():
    d = make_data(small(random_non_queries=True))
    filler = d.train_y[:, 6:] == IGNORE
    assert (d.train_x[:, 6:][filler] != 0).float().mean() > 0.9  # 1/32 are 0 by chance


def test_deterministic_seeded_and_train_differs_from_test():
    a, b, c = make_data(small()), make_data(small()), make_data(small(seed=1))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert not torch.equal(a.train_x[:50], a.test_x)
    assert a.train_x.shape == (200, 24) and a.test_x.shape == (50, 24)


def test_query_gaps_follow_the_power_law():
    # with one pair the gap is a single draw from p_g ∝ a·g^(a-1), g = 1 … space
    cfg = MQARConfig(vocab_size=16, seq_len=20, n_pairs=1, power_a=0.3)
    _, y = generate(cfg, 20_000, torch.Generator().manual_seed(0))
    gap = ((y != IGNORE).nonzero()[:, 1] - 2) // 2
    space = (20 - 2) // 2
    g = np.arange(1, space + 1)
    p = 0.3 * g ** (0.3 - 1)
    p /= p.sum()
    observed = np.bincount(gap.numpy(), minlength=space)
    assert stats.chisquare(observed, 20_000 * p).pvalue > 1e-3


def test_query_accuracy_counts_query_positions_only():
    labels = torch.tensor([[IGNORE, 2, IGNORE, 1]])
    logits = torch.zeros(1, 4, 3)
    logits[0, 0, 0] = logits[0, 1, 2] = logits[0, 2, 1] = logits[0, 3, 0] = 1.0
    assert query_accuracy(logits, labels) == 0.5  # position 1 right, position 3 wrong
    with pytest.raises(ValueError, match="no query"):
        query_accuracy(logits, torch.full((1, 4), IGNORE))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"seq_len": 23}, "even"),
        ({"n_pairs": 7}, "seq_len >= 4"),
        ({"vocab_size": 6, "n_pairs": 3}, "vocab_size >= 8"),
        ({"power_a": 0}, "power_a"),
    ],
)
def test_bad_configs_name_the_problem(kw, match):
    with pytest.raises((ConfigError, ValueError), match=match):
        small().override(**kw)
