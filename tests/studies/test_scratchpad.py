"""The ``scratchpad`` study: the three output formats (a scratchpad's steps compute the
result, for addition and multiplication), the nested, balanced, held-out datasets,
greedy scoring against an oracle and a wrong model, samples-to-90 % with its
interpolation, censoring and bootstrap, the transition fit, and one-line errors for bad
configs. The smoke preset runs in tests/studies/test_smoke_presets.py; the quick
preset's claims are checked by running it (docs/scratchpad.md), not here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fmlab.errors import UserInputError
from fmlab.studies.scratchpad.formats import (
    VOCAB,
    Problem,
    answer_of,
    encode,
    make_tests,
    make_train,
    output,
    patterns,
)
from fmlab.studies.scratchpad.summary import (
    bootstrap_n90,
    censored,
    samples_to_reach,
    transition,
)
from fmlab.studies.scratchpad.train import encode_rows, score


def test_formats_of_a_carrying_addition():
    p = Problem(12, 39, "add")
    assert p.prompt == "12+39="
    assert output(p, "plain") == "51#"
    assert output(p, "reversed") == "15#"
    # units: 2+9+0 = 11 -> write 1 carry 1; tens: 1+3+1 = 5; final carry 0
    assert output(p, "scratchpad") == "2901" + "1315" + "0" + "|51#"
    assert output(Problem(7, 8, "mul"), "scratchpad") == "7806" + "5" + "|56#"
    with pytest.raises(ValueError, match="unknown format"):
        output(p, "binary")


@pytest.mark.parametrize("op", ["add", "mul"])
def test_scratchpad_steps_compute_the_result(op):
    """Read back from the steps alone (digits written, then the final carry), every
    scratchpad states the true result — and each step's arithmetic holds."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = int(rng.integers(0, 10**4))
        b = int(rng.integers(0, 10 if op == "mul" else 10**4))
        p = Problem(a, b, op)
        steps, rest = output(p, "scratchpad").split("|")
        body, final = steps[:-1], steps[-1]
        quads = [body[i : i + 4] for i in range(0, len(body), 4)]
        carry = 0
        for q in quads:
            x, y, c, s = (int(ch) for ch in q)
            assert c == carry
            total = (x + y if op == "add" else x * y) + c
            assert s == total % 10
            carry = total // 10
        assert int(final) == carry
        written = int(final + "".join(q[3] for q in quads)[::-1])
        assert written == p.result and rest == f"{p.result}#"
        assert answer_of(output(p, "scratchpad"), "scratchpad") == str(p.result)
        assert answer_of(output(p, "reversed"), "reversed") == str(p.result)
        assert answer_of(output(p, "plain"), "plain") == str(p.result)


def test_answer_of_rejects_unfinished_or_malformed_outputs():
    assert answer_of("51", "plain") is None  # no end mark
    assert answer_of("2901#", "scratchpad") is None  # no result after the steps
    assert answer_of("5+1#", "plain") is None
    assert answer_of("15#99", "reversed") == "51"  # what follows the end is ignored


def test_datasets_are_nested_balanced_and_held_out():
    tests = make_tests("add", 2, 50)
    assert all(p.pattern == (2, 2) for p in tests.test)
    assert all(p.pattern == (3, 3) for p in tests.longer)
    train = make_train("add", 2, 400, seed=3, tests=tests)
    pairs = [(p.a, p.b) for p in train]
    assert len(set(pairs)) == 400  # no repeats
    assert not set(pairs) & {(p.a, p.b) for p in tests.test}
    first = [p.pattern for p in train[:100]]  # the first N are balanced over patterns
    assert {first.count(pat) for pat in patterns("add", 2)} == {25}
    assert make_train("add", 2, 400, seed=3, tests=tests) == train
    assert make_train("add", 2, 400, seed=4, tests=tests) != train
    # 1-digit x 1-digit has only 100 problems: the other patterns fill in
    assert len(make_train("add", 1, 100, seed=0, tests=make_tests("add", 1, 0))) == 100
    with pytest.raises(UserInputError, match="lower the largest dataset size"):
        make_train("mul", 1, 200, seed=0, tests=make_tests("mul", 1, 10))


def test_rows_mask_exactly_the_output():
    p = Problem(12, 39, "add")
    ids, mask = encode_rows([p], "reversed", 12)
    text = "".join(VOCAB[i] for i in ids[0].tolist())
    assert text.startswith("12+39=15#")
    kept = [VOCAB[i] for i, m in zip(ids[0].tolist(), mask[0].tolist(), strict=True) if m]
    assert "".join(kept) == "15#"
    with pytest.raises(ValueError, match="tokens"):
        encode_rows([p], "scratchpad", 8)


class Oracle:
    """A stand-in ensemble: member k continues each prompt with the true output (a
    scratchpad model's own format), or with a wrong digit where ``wrong[k]``."""

    def __init__(self, fmt: str, wrong: list[bool]):
        self.fmt, self.wrong, self.size = fmt, wrong, len(wrong)
        self.params = {"w": torch.zeros(1)}
        self.outputs = {}

    def __call__(self, x, stacked=True):
        K, N, t = x.shape
        logits = torch.zeros(K, N, t, len(VOCAB))
        for k in range(K):
            for n in range(N):
                text = "".join(VOCAB[i] for i in x[k, n].tolist())
                prompt = text[: text.index("=") + 1]
                a, b = prompt[:-1].split("+")
                p = Problem(int(a), int(b), "add")
                full = prompt + output(p, self.fmt)
                if text.endswith("=|"):  # asked without the scratchpad: it starts over
                    full = text + output(p, self.fmt)
                nxt = full[len(text)] if len(text) < len(full) else "#"
                if self.wrong[k] and nxt.isdigit():
                    nxt = str((int(nxt) + 1) % 10)
                logits[k, n, -1, VOCAB.index(nxt)] = 1.0
        return logits


@pytest.mark.parametrize("fmt", ["plain", "reversed", "scratchpad"])
def test_greedy_scoring_against_an_oracle_and_a_wrong_model(fmt):
    problems = [Problem(12, 39, "add"), Problem(5, 95, "add"), Problem(99, 99, "add")]
    got = score(Oracle(fmt, [False, True]), problems, fmt)
    assert got["exact"][0].all() and got["output_exact"][0].all()
    assert float(got["digit_acc"][0].mean()) == 1.0
    assert not got["exact"][1].any() and float(got["digit_acc"][1].max()) == 0.0


def test_the_ablation_prompt_skips_the_scratchpad():
    """Prompted ``=|``, a model that can only write its scratchpad writes steps where
    the result should be: it scores 0 though it scores 1 with its scratchpad."""
    problems = [Problem(12, 39, "add"), Problem(47, 58, "add")]
    oracle = Oracle("scratchpad", [False])
    assert score(oracle, problems, "scratchpad")["exact"].all()
    assert not score(oracle, problems, "scratchpad", skip_scratch=True)["exact"].any()


def test_samples_to_reach_interpolates_in_log_size_and_censors():
    sizes = [100, 200, 400, 800]
    # crosses 0.9 halfway (in log) between 200 and 400
    assert samples_to_reach(sizes, [0.0, 0.8, 1.0, 1.0], 0.9) == pytest.approx(200 * 2**0.5)
    assert samples_to_reach(sizes, [0.95, 1, 1, 1], 0.9) == 100  # an upper bound
    assert math.isinf(samples_to_reach(sizes, [0, 0.1, 0.5, 0.89], 0.9))
    assert censored(math.inf, sizes) == 800 and censored(300.0, sizes) == 300
    # the first crossing counts, not a later dip
    assert samples_to_reach(sizes, [0.0, 0.95, 0.85, 1.0], 0.9) < 200


def test_bootstrap_orders_formats_that_differ_and_not_those_that_do_not():
    sizes = [100, 200, 400, 800, 1600]
    rng = np.random.default_rng(0)
    early = np.clip(np.array([0.1, 0.95, 1, 1, 1]) + rng.normal(0, 0.02, (4, 5)), 0, 1)
    late = np.clip(np.array([0, 0.05, 0.3, 0.95, 1]) + rng.normal(0, 0.02, (4, 5)), 0, 1)
    boot = bootstrap_n90({"slow": late, "fast": early, "same": late.copy()}, sizes, 0.9, 500)
    ratio = np.log10(boot["slow"] / boot["fast"])
    assert np.quantile(ratio, 0.025) > 0  # the slow format needs more samples
    assert np.all(boot["slow"] == boot["same"])  # paired resamples: identical curves tie


def test_transition_fit_recovers_a_sharp_and_a_gradual_rise():
    sizes = np.geomspace(100, 10_000, 9)

    def curve(t0, w):
        return 1 / (1 + np.exp(-(np.log(sizes) - np.log(t0)) / w))

    sharp = transition(sizes, curve(1000, 0.15))
    gradual = transition(sizes, curve(1000, 1.0))
    assert sharp["span"] == pytest.approx(math.exp(2 * 0.15 * math.log(9)), rel=1e-3)
    assert gradual["span"] == pytest.approx(math.exp(2 * 1.0 * math.log(9)), rel=1e-3)
    assert sharp["t0"] == pytest.approx(1000, rel=1e-3)
    assert transition(sizes[:4], curve(1000, 0.15)[:4]) is None  # too few sizes
    assert transition(sizes, np.zeros(9)) is None  # flat: nothing to fit


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sizes=[400,200]", "strictly rising"),
        ('ops=["add","add"]', "must not repeat"),
        ('ops=["div"]', "Input should be 'add' or 'mul'"),
        ("digits=9", "less than or equal to 6"),
        ("digits=1", "lower the largest dataset size"),
    ],
)
def test_bad_config_is_a_short_error(override, message):
    """The CLI's config error: a heading line and the field's line, no traceback."""
    from typer.testing import CliRunner

    from fmlab.cli import app

    result = CliRunner().invoke(app, ["run", "scratchpad", "-p", "smoke", "--set", override])
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert message in text and "Traceback" not in text and len(text.splitlines()) <= 2


def test_encode_covers_every_symbol():
    assert encode("0123456789+*=|#") == list(range(len(VOCAB)))


def test_the_format_ratio_claims_use_per_seed_ratios_with_a_t_interval():
    from scipy import stats

    from fmlab.studies.scratchpad import QUICK
    from fmlab.studies.scratchpad.summary import summarise

    sizes = list(QUICK.sizes)
    rng = np.random.default_rng(0)

    def curves(shift: float) -> np.ndarray:  # (3 seeds, sizes): sigmoids in log size
        mids = np.log(sizes[len(sizes) // 2]) + shift + rng.normal(0, 0.2, 3)
        return 1 / (1 + np.exp(-4 * (np.log(sizes)[None, :] - mids[:, None])))

    blank = np.zeros((3, len(sizes)))
    by_fmt = {
        fmt: {"test": curves(s), "test_digits": blank, "longer": blank,
              "longer_digits": blank, "tokens_per_sample": 8.0}
        for fmt, s in (("plain", 0.4), ("reversed", 0.0))
    }  # fmt: skip
    cfg = QUICK.model_copy(update={"seeds": [0, 1, 2], "n_boot": 200})
    metrics, _ = summarise(cfg, {"add": by_fmt})
    per_seed = [
        math.log10(censored(samples_to_reach(sizes, a, cfg.target_exact), sizes)
                   / censored(samples_to_reach(sizes, b, cfg.target_exact), sizes))
        for a, b in zip(by_fmt["plain"]["test"], by_fmt["reversed"]["test"], strict=True)
    ]  # fmt: skip
    key = "add_log10_n90_ratio_plain_reversed"
    assert metrics[f"{key}_by_seed"] == pytest.approx(per_seed)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(per_seed), scale=stats.sem(per_seed))
    assert (metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"]) == pytest.approx((low, high))
    assert metrics[f"{key}_boot_ci_low"] <= metrics[f"{key}_boot_ci_high"]
