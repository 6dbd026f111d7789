"""The ``alignment`` study: Bradley–Terry labels follow their probabilities (binomial
tests), the DPO and IPO losses against their closed forms on hand examples (IPO's minimum
at the margin 1/(2β)), DPO with a large β stays on the reference, the exact KL and the
token-shift measure on known cases, one-line errors for bad pair files and a clear error
for a bad config.
The quick preset's claims are checked by running it (docs/alignment.md), not here."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from scipy.stats import binomtest

from fmlab.errors import UserInputError
from fmlab.models import GPT, GPTConfig
from fmlab.studies.alignment.losses import bt_loss, dpo_loss, ipo_loss
from fmlab.studies.alignment.measure import token_shift
from fmlab.studies.alignment.policy import kl_along, sample, true_reward
from fmlab.studies.alignment.prefs import bt_probability, label, read_pairs
from fmlab.studies.alignment.run import reward_tokens
from fmlab.studies.alignment.train import Eval, lm_loss
from fmlab.tasks.language import LanguageConfig, make_language
from fmlab.train import TrainConfig, train


def test_bradley_terry_labels_match_their_probabilities():
    """Per reward difference d, the count of first-preferred pairs is Binomial(n, σ(d/τ)):
    an exact two-sided binomial test does not reject it (Bonferroni over the groups), and
    rejects the labels of a wrong temperature (the test has power)."""
    n, tau = 4000, 0.1
    diffs = torch.tensor([-0.3, -0.1, 0.0, 0.1, 0.2])
    r2 = torch.zeros(n * len(diffs))
    r1 = diffs.repeat_interleave(n)
    ids = torch.zeros(len(r1), 1, dtype=torch.long)
    pairs = label(ids, ids + 1, ids + 2, r1, r2, temperature=tau, deterministic=False,
                  generator=torch.Generator().manual_seed(0))  # fmt: skip
    for k, d in enumerate(diffs):
        first = pairs.first[k * n : (k + 1) * n]
        p = 1 / (1 + math.exp(-float(d) / tau))
        assert float(pairs.p_first[k * n]) == pytest.approx(p)
        assert binomtest(int(first.sum()), n, p).pvalue > 0.01 / len(diffs)
    wrong = 1 / (1 + math.exp(-0.1 / 0.2))  # τ = 0.2 for d = 0.1
    assert binomtest(int(pairs.first[3 * n : 4 * n].sum()), n, wrong).pvalue < 1e-6
    # the chosen completion is the first one exactly when it was preferred
    assert torch.equal(pairs.chosen[:, 0] == 1, pairs.first)


def test_deterministic_labels_prefer_the_higher_reward_and_drop_ties():
    r1 = torch.tensor([0.5, 0.2, 0.3, 0.7])
    r2 = torch.tensor([0.1, 0.2, 0.6, 0.7])
    ids = torch.arange(4)[:, None]
    pairs = label(ids, ids + 10, ids + 20, r1, r2, temperature=0.1, deterministic=True,
                  generator=torch.Generator())  # fmt: skip
    assert pairs.prompts.flatten().tolist() == [0, 2]
    assert pairs.chosen.flatten().tolist() == [10, 22]
    assert pairs.p_first.tolist() == [1.0, 0.0]
    assert float(bt_probability(torch.tensor(0.3), torch.tensor(0.1), 0.1)) == pytest.approx(
        1 / (1 + math.exp(-2))
    )


def test_losses_equal_the_papers_closed_forms_on_a_hand_example():
    """Rafailov et al. eq. 7 and Azar et al. eq. 17, computed by hand: log-ratios
    chosen -1 - (-2) = 1, rejected -3 - (-2.5) = -0.5, so h = 1.5."""
    t = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731
    pi_w, pi_l, ref_w, ref_l = t(-1.0), t(-3.0), t(-2.0), t(-2.5)
    assert float(dpo_loss(pi_w, pi_l, ref_w, ref_l, 0.5)) == pytest.approx(
        math.log(1 + math.exp(-0.75)), abs=1e-12
    )
    assert float(ipo_loss(pi_w, pi_l, ref_w, ref_l, 0.25)) == pytest.approx(
        (1.5 - 2.0) ** 2, abs=1e-12
    )
    assert float(bt_loss(t(2.0), t(0.5))) == pytest.approx(math.log(1 + math.exp(-1.5)))


@pytest.mark.parametrize("beta", [0.05, 0.3, 2.0])
def test_ipo_loss_is_minimal_at_the_margin_one_over_two_beta(beta):
    """Minimising IPO over a free pair of log-likelihoods lands on h* = 1/(2β), whatever
    the start; DPO's loss on the same pair keeps falling as the margin grows."""
    pi = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([-1.0, -0.5], dtype=torch.float64)
    opt = torch.optim.LBFGS(
        [pi], lr=1, max_iter=100, tolerance_grad=1e-12, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = ipo_loss(pi[:1], pi[1:], ref[:1], ref[1:], beta).sum()
        loss.backward()
        return loss

    opt.step(closure)
    h = float(((pi[0] - ref[0]) - (pi[1] - ref[1])).detach())
    assert h == pytest.approx(1 / (2 * beta), rel=1e-6)
    margins = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    z = torch.zeros(3, dtype=torch.float64)
    d = dpo_loss(margins, z, z, z, beta)
    assert bool((d[1:] < d[:-1]).all())


@pytest.fixture(scope="module")
def setup():
    lang = make_language(LanguageConfig(vocab_size=8, order=1, seed=0))
    cfg = SimpleNamespace(prompt_len=2, gen_len=5, rl_samples=2)
    ref = GPT(GPTConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32), vocab_size=8, seq_len=7,
              generator=torch.Generator().manual_seed(0))  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    tc = TrainConfig(steps=60, lr=3e-3, batch_size=32, eval_every=60)
    for _ in train(ref, lm_loss, iter(lambda: lang.sample(32, 7, gen), None), tc):
        pass
    ref.eval()
    good = reward_tokens(8, 2, 1)
    prompts = lang.sample(128, 2, gen)
    y1, y2 = sample(ref, prompts, 5, gen)[:, 2:], sample(ref, prompts, 5, gen)[:, 2:]
    r = [true_reward(torch.cat([prompts, y], 1), 2, good) for y in (y1, y2)]
    pairs = label(prompts, y1, y2, *r, temperature=0.1, deterministic=False, generator=gen)
    ev_prompts = lang.sample(64, 2, gen)
    ev = Eval(ref, ev_prompts, true_reward(sample(ref, ev_prompts, 5, gen), 2, good), good, 5, 0)
    return cfg, ref, pairs, ev


def _dpo_optimum(beta: float, tau: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """A tabular policy over 5 completions trained with the population DPO loss (pairs
    drawn from π_ref, labels Bradley–Terry on r / τ); and the paper's closed form
    π* ∝ π_ref exp(r / (τ β)) (Rafailov et al. 2023, eq. 4 with their eq. 5 reward)."""
    ref = torch.tensor([0.4, 0.25, 0.15, 0.12, 0.08], dtype=torch.float64)
    r = torch.tensor([0.0, 0.3, 0.1, 0.6, 0.2], dtype=torch.float64)
    p = bt_probability(r[:, None], r[None, :], tau)  # (5, 5) P(y ≻ y')
    w = ref[:, None] * ref[None, :]
    theta = ref.log().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1, max_iter=500, tolerance_grad=1e-13,
                            tolerance_change=0, line_search_fn="strong_wolfe")  # fmt: skip

    def closure():
        opt.zero_grad()
        lp = torch.log_softmax(theta, 0)
        a, b = lp[:, None].expand(5, 5), lp[None, :].expand(5, 5)
        ra, rb = ref.log()[:, None].expand(5, 5), ref.log()[None, :].expand(5, 5)
        loss = (w * p * dpo_loss(a, b, ra, rb, beta)).sum()
        loss.backward()
        return loss

    opt.step(closure)
    star = ref * torch.exp(r / (tau * beta))
    return torch.softmax(theta.detach(), 0), star / star.sum(), ref


def _kl(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * (a / b).log()).sum())


def test_dpo_with_a_large_beta_tracks_the_reference():
    """DPO's minimiser is the closed form π* ∝ π_ref exp(r/(τβ)), at every β; as β grows
    it tends to the reference (KL → 0), as β falls it moves away."""
    kls = []
    for beta in (0.3, 3.0, 100.0):
        learned, star, ref = _dpo_optimum(beta)
        assert torch.allclose(learned, star, atol=1e-5), (beta, learned, star)
        kls.append(_kl(learned, ref))
    assert kls[0] > kls[1] > kls[2] and kls[2] < 1e-3 and kls[0] > 0.1


def test_exact_kl_is_zero_for_the_reference_and_positive_after_a_change(setup):
    _, ref, _, ev = setup
    ids = sample(ref, ev.prompts, 5, torch.Generator().manual_seed(3))
    assert float(kl_along(ref, ref, ids, 2).abs().max()) < 1e-6
    other = GPT(ref.cfg, vocab_size=8, seq_len=7, generator=torch.Generator().manual_seed(9))
    assert float(kl_along(other, ref, ids, 2).min()) > 0


def test_token_shift_of_the_base_itself_is_all_unshifted(setup):
    _, ref, _, ev = setup
    out = token_shift(ref, ref, ev.prompts, 5, ev.good)
    assert out["unshifted"] == 1.0 and out["changed"] == 0.0 and out["shifted"] == 0.0
    assert out["changed_by_position"] == [0.0] * 5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": [1], "chosen": [2]', "jsonl:2: not JSON"),
        ("[1, 2]", "jsonl:2: expected an object"),
        ('{"prompt": [1], "chosen": [2]}', "jsonl:2: missing rejected"),
        ('{"prompt": [1], "chosen": [2], "rejected": [99]}', "out of range"),
        ('{"prompt": [1], "chosen": [2], "rejected": [2]}', "are the same"),
        ('{"prompt": [1], "chosen": "", "rejected": [3]}', "chosen is empty"),
        ('{"prompt": [1], "chosen": [2.5], "rejected": [3]}', "string or a list of token ids"),
    ],
)
def test_bad_pair_file_is_one_clear_line(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    good = json.dumps({"prompt": [1, 2], "chosen": [3], "rejected": [4]})
    path.write_text(f"{good}\n{line}\n")
    with pytest.raises(UserInputError, match=message) as err:
        read_pairs(path, vocab_size=16)
    assert "pairs.jsonl" in str(err.value) and "\n" not in str(err.value)


def test_pair_file_reads_text_and_token_ids(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "Hi", "chosen": " yes", "rejected": " no"},
            {"prompt": [1], "chosen": [2, 3], "rejected": [4]}]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_pairs(path, vocab_size=8) == rows
    with pytest.raises(UserInputError, match="does not exist"):
        read_pairs(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserInputError, match="no pairs"):
        read_pairs(tmp_path / "empty.jsonl")


def test_cli_bad_config_value_is_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from fmlab.cli import app

    result = CliRunner().invoke(app, ["run", "alignment", "-p", "smoke", "--set", "beta_main=5",
                                      "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2
    text = result.output.strip()
    assert "beta_main=5.0 is not in betas" in text and "Traceback" not in text
