"""The synthetic languages of the ``representations`` study: the exact Bayes-optimal
loss against a Monte-Carlo estimate from sampled sequences, and the shared lexicon."""

from __future__ import annotations

import math

import pytest
import torch

from fmlab.studies.representations.task import ShiftConfig, make_pair


@pytest.mark.parametrize("order", [1, 2])
def test_optimal_loss_matches_the_bayes_predictor_on_samples(order):
    cfg = ShiftConfig(n_classes=5, tokens_per_class=3, order=order, seq_len=10)
    lang, _ = make_pair(cfg, seed=4)
    tokens = lang.sample(20_000, torch.Generator().manual_seed(0))  # (n, T)
    K, M = lang.members.shape
    cls = torch.empty(K * M, dtype=torch.long)
    cls[lang.members.reshape(-1)] = torch.arange(K).repeat_interleave(M)
    z = cls[tokens]  # (n, T) classes
    nll = []
    for t in range(1, cfg.seq_len):  # predict token t from tokens < t
        if t < order:
            nll.append(torch.full((len(z),), math.log(K * M), dtype=torch.float64))
            continue
        ctx = torch.zeros(len(z), dtype=torch.long)
        for j in range(order):
            ctx = ctx * K + z[:, t - order + j]
        p = lang.transition.double()[ctx, z[:, t]]
        nll.append(-torch.log(p / M))
    per_seq = torch.stack(nll, 1).mean(1)  # (n,)
    se = per_seq.std().item() / math.sqrt(len(per_seq))
    assert lang.optimal_loss() == pytest.approx(per_seq.mean().item(), abs=4 * se)


def test_the_two_languages_share_the_lexicon_and_differ_in_transitions():
    src, dst = make_pair(ShiftConfig(), seed=0)
    assert torch.equal(src.members, dst.members)
    assert sorted(src.members.reshape(-1).tolist()) == list(range(64))
    assert not torch.allclose(src.transition, dst.transition)
    torch.testing.assert_close(src.transition.sum(1), torch.ones(64))
    a, b = make_pair(ShiftConfig(), seed=0)
    assert torch.equal(a.transition, src.transition) and torch.equal(b.transition, dst.transition)
