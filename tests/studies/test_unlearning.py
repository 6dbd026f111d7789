"""The ``unlearning`` study: the corpus's splits, the methods' losses (NPO → GA as
β → 0, learning rate 0 leaves the model bit-identical), ``fmlab unlearn`` on a tiny
causal LM, and one-line errors for malformed fact files. The quick preset's claims are
checked by running it (docs/unlearning.md), not here."""

from __future__ import annotations

import json

import pytest
import torch

from fmlab.models import GPT, GPTConfig
from fmlab.studies.unlearning.facts import make_corpus, read_facts, vocabulary
from fmlab.studies.unlearning.lm import LM, WordCodec, encode, gpt_call, sequence_nll
from fmlab.studies.unlearning.methods import METHODS, Step, npo_forget
from fmlab.studies.unlearning.unlearn import UnlearnConfig, frozen, unlearn


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(40, 4, [1.0, 5.0, 10.0], seed=3)


@pytest.fixture
def lm():
    codec = WordCodec(vocabulary())
    cfg = GPTConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32)
    model = GPT(
        cfg, vocab_size=len(codec.words), seq_len=24, generator=torch.Generator().manual_seed(0)
    )
    return LM(model, codec, gpt_call, 24)


def test_corpus_splits_are_nested_and_held_out_people_are_new(corpus):
    f1, f5, f10 = (set(corpus.forget[p]) for p in (1.0, 5.0, 10.0))
    assert f1 < f5 < f10 and len(f10) == 4 * 5  # 4 of 40 people, 5 attributes each
    trained = {f.entity for f in corpus.people}
    assert not trained & {f.entity for f in corpus.holdout}
    for f in corpus.people + corpus.world:
        assert f.value in f.paraphrase and (f.question, f.answer) in f.train
        assert len(set(f.perturbed)) == 3 and f.paraphrase not in f.perturbed
    assert set(corpus.retain(10.0)).isdisjoint(f10)
    again = make_corpus(40, 4, [1.0, 5.0, 10.0], seed=3)
    assert again.people == corpus.people and again.forget == corpus.forget


def test_npo_gradient_tends_to_gradient_ascent_as_beta_vanishes(corpus, lm):
    """Zhang et al. 2024, Prop. 1: ∇ NPO_β → ∇ of -log π(y|x) summed over the answer
    (GA on the sequence likelihood) as β → 0; GA on the mean token NLL is the same
    direction scaled by the answer lengths (equal here)."""
    facts = [corpus.people[i] for i in corpus.forget[10.0] if i % 5 == 0]  # one attribute
    batch = encode(lm.codec, [(f.question, f.answer) for f in facts])
    ref = frozen(lm)
    with torch.no_grad():  # move away from the reference, where NPO's weights are 1 at any β
        gen = torch.Generator().manual_seed(1)
        for p in lm.model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))

    def grad(loss_fn):
        lm.model.zero_grad()
        loss_fn().backward()
        return torch.cat([p.grad.flatten() for p in lm.model.parameters()]).clone()

    def ga_sum():
        nll, _ = sequence_nll(lm, batch)
        return -nll.mean()

    g_ga = grad(ga_sum)
    errors = []
    for beta in (1.0, 0.1, 1e-3, 1e-6):
        g = grad(lambda b=beta: npo_forget(Step(lm, batch, ref=ref, beta=b)))
        errors.append(float((g - g_ga).norm() / g_ga.norm()))
    assert errors[-1] < 1e-5 and errors[0] > errors[1] > errors[2]
    # GA as open-unlearning writes it (mean token NLL) is the same direction, scaled by
    # the tokens per answer (all answers here have the same length)
    lengths = batch.target.sum(1)
    assert bool((lengths == lengths[0]).all())
    g_mean = grad(lambda: METHODS["ga"].loss(Step(lm, batch)))
    assert float((g_ga - float(lengths[0]) * g_mean).norm() / g_ga.norm()) < 1e-5


@pytest.mark.parametrize("method", list(METHODS))
def test_learning_rate_zero_leaves_the_model_bit_identical(corpus, lm, method):
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    forget = [r for i in corpus.forget[10.0] for r in corpus.people[i].train]
    retain = [r for i in corpus.retain(10.0) for r in corpus.people[i].train]
    cfg = UnlearnConfig(steps=3, lr=0.0, batch_size=4, eval_every=1, weight_decay=0.01)
    *_, (step, last) = unlearn(lm, method, forget, retain, cfg, seed=0)
    assert step == 3
    for k, v in last.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    cfg = cfg.model_copy(update={"lr": 1e-2})
    *_, (_, moved) = unlearn(lm, method, forget, retain, cfg, seed=0)
    assert any(not torch.equal(v, before[k]) for k, v in moved.model.state_dict().items())


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "q?", "answer": "a"', "not JSON"),
        ('["q?", "a"]', "expected an object"),
        ('{"question": "q?"}', "'answer' must be a non-empty string"),
        ('{"question": "q?", "answer": "a", "perturbed_answer": [1]}', "perturbed_answer"),
    ],
)
def test_malformed_fact_file_names_the_line(tmp_path, line, message):
    from fmlab.errors import UserInputError

    good = '{"question": "Who?", "answer": "Me."}'
    path = _write(tmp_path / "facts.jsonl", [good, "", line])
    with pytest.raises(UserInputError, match=rf"facts.jsonl:3: .*{message}"):
        read_facts(path)


def test_cli_malformed_file_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from fmlab.cli import app

    path = _write(tmp_path / "bad.jsonl", ['{"question": "q", "answer": "a"}', "{oops"])
    result = CliRunner().invoke(app, ["unlearn", "tiny-gpt2", "--forget", str(path)])
    assert result.exit_code == 2
    text = result.output.strip()
    assert "bad.jsonl:2" in text and "Traceback" not in text and len(text.splitlines()) == 1


def test_cli_unlearns_a_causal_lm_into_a_run_directory(tmp_path, one_thread):
    pytest.importorskip("transformers")
    from typer.testing import CliRunner

    from fmlab.cli import app

    def facts(n, offset):
        return [
            json.dumps(
                {
                    "question": f"What is the code of item {i}?",
                    "answer": f"The code is {i * 7}.",
                    "paraphrased_answer": f"Item {i} has code {i * 7}.",
                    "perturbed_answer": [
                        f"Item {i} has code {i * 7 + 1}.",
                        f"Item {i} has code 3.",
                    ],
                }
            )
            for i in range(offset, offset + n)
        ]

    forget = _write(tmp_path / "forget.jsonl", facts(4, 0))
    retain = _write(tmp_path / "retain.jsonl", facts(4, 10))
    holdout = _write(tmp_path / "holdout.jsonl", facts(4, 20))
    args = [
        "unlearn",
        "tiny-gpt2",
        "--forget",
        str(forget),
        "--retain",
        str(retain),
        "--holdout",
        str(holdout),
        "--method",
        "ga,npo_rt",
        "--steps",
        "2",
        "--lr",
        "1e-3",
        "--eval-every",
        "1",
        "--out",
        str(tmp_path / "runs"),
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["status"] == "completed" and summary["study"] == "unlearning"
    m = summary["metrics"]
    assert m["forget_prob_ga"] < m["forget_prob_before"]  # ascent lowers the answers' odds
    assert 0 <= m["mia_loss_original"] <= 1 and "utility_npo_rt" in m
    claims = {c["id"]: c["passed"] for c in summary["claims"]}
    assert set(claims.values()) == {None}  # no retrained model: the claims are not tested


def test_batched_greedy_answers_equal_one_prompt_at_a_time(corpus, lm):
    from fmlab.studies.unlearning.lm import greedy_answers

    questions = [f.question for f in corpus.people[:30] + corpus.world[:10]]
    together = greedy_answers(lm, questions, 8)
    assert together == [greedy_answers(lm, [q], 8)[0] for q in questions]
