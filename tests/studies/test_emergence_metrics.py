"""The ``emergence`` study's metrics against references: token edit distance against a
plain recursive Levenshtein, the Brier score against scikit-learn, exact match against
the product of per-position accuracies when positions err independently, and the
arithmetic encoding and multiple-choice distractors."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss

from fmlab.errors import UserInputError
from fmlab.studies.emergence import metrics as M
from fmlab.studies.emergence.arithmetic import Task, answer_value, distractors, make_problems


def levenshtein(a: tuple, b: tuple) -> int:
    """The textbook recursion, memoised: the reference."""

    @cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


@pytest.mark.parametrize(("la", "lb"), [(4, 4), (3, 6), (7, 2), (1, 5), (0, 3)])
def test_edit_distance_matches_the_recursive_reference(la, lb):
    rng = np.random.default_rng(la * 10 + lb)
    a = rng.integers(0, 3, (200, la))  # a small alphabet: many matches and near-matches
    b = rng.integers(0, 3, (200, lb))
    got = M.edit_distance(a, b)
    want = [levenshtein(tuple(x), tuple(y)) for x, y in zip(a, b, strict=True)]
    np.testing.assert_array_equal(got, want)
    assert M.edit_distance(a, a.copy()).sum() == 0


def test_edit_distance_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="token arrays"):
        M.edit_distance(np.zeros((3, 2)), np.zeros((4, 2)))


def test_brier_matches_sklearn_multiclass_and_binary():
    """Binary: sklearn's Brier is mean (p_1 - y)², and the two-class sum is twice it (any
    sklearn). Multiclass (sklearn >= 1.7, unhalved): the same sum over classes."""
    import sklearn

    gen = torch.Generator().manual_seed(0)
    multiclass = tuple(int(x) for x in sklearn.__version__.split(".")[:2]) >= (1, 7)
    for k in (2, 4, 7):
        probs = torch.softmax(torch.randn(300, k, generator=gen, dtype=torch.float64), -1)
        label = torch.randint(k, (300,), generator=gen)
        ours = float(M.brier(probs, label).mean())
        if k == 2:
            binary = brier_score_loss(label.numpy(), probs[:, 1].numpy())
            assert ours == pytest.approx(2 * binary, rel=1e-12)
        if multiclass:
            theirs = brier_score_loss(label.numpy(), probs.numpy(), labels=list(range(k)),
                                      scale_by_half=False)  # fmt: skip
            assert ours == pytest.approx(theirs, rel=1e-12)


def test_exact_match_is_the_product_of_token_accuracies_when_errors_are_independent():
    """Each position right with its own probability, independently: EM → Π_i acc_i (the
    paper's eq. 2), within 4 binomial standard errors; and EM ≠ Π when errors are
    perfectly correlated (all positions wrong together), so the check can fail."""
    gen = torch.Generator().manual_seed(1)
    n, p = 40_000, torch.tensor([0.95, 0.8, 0.7, 0.9])
    correct = torch.rand(n, 4, generator=gen) < p
    target = torch.randint(10, (n, 4), generator=gen)
    pred = torch.where(correct, target, (target + 1) % 10)
    em = float(M.exact_match(pred, target).mean())
    prod = M.product_of_accuracies(pred == target)
    se = (prod * (1 - prod) / n) ** 0.5
    assert abs(em - prod) < 4 * se and prod == pytest.approx(float(p.prod()), abs=0.01)
    together = (torch.rand(n, 1, generator=gen) < 0.8).expand(n, 4)
    pred = torch.where(together, target, (target + 1) % 10)
    em = float(M.exact_match(pred, target).mean())
    assert em - M.product_of_accuracies(pred == target) > 0.35  # 0.8 against 0.8^4 = 0.41
    assert float(M.token_accuracy(pred == target).mean()) == pytest.approx(em)


def test_multiple_choice_metrics():
    lp = torch.tensor([[-1.0, -3.0, -2.0], [-5.0, -0.1, -4.0]])
    label = torch.tensor([0, 0])
    assert M.mc_correct(lp, label).tolist() == [1.0, 0.0]
    probs = M.choice_probs(lp)
    assert torch.allclose(probs.sum(-1), torch.ones(2, dtype=torch.float64))
    assert float(M.brier(torch.eye(3, dtype=torch.float64), torch.arange(3)).max()) == 0.0


@pytest.mark.parametrize("name", ["add1", "add3", "mul2"])
@pytest.mark.parametrize("reverse", [False, True])
def test_problems_encode_the_right_answer(name, reverse):
    task = Task.parse(name)
    p = make_problems(task, 500, torch.Generator().manual_seed(2), reverse)
    want = p.a + p.b if task.op == "add" else p.a * p.b
    assert p.answer.shape == (500, task.answer_len)
    assert torch.equal(answer_value(p.answer, reverse), want)
    options, label = distractors(p.answer, 4, torch.Generator().manual_seed(3))
    assert torch.equal(options[torch.arange(500), label], p.answer)
    for row in options:  # distinct options, each a one-digit change of the answer
        assert len({tuple(o.tolist()) for o in row}) == 4
    diff = (options != p.answer[:, None]).sum(-1)
    assert sorted(set(diff.flatten().tolist())) == [0, 1]


def test_bad_task_names_are_one_line_errors():
    for bad in ("sub2", "add0", "add12", "mul"):
        with pytest.raises(UserInputError, match="add<n> or mul<n>"):
            Task.parse(bad)
