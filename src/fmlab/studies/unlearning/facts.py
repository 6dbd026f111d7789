"""The ``unlearning`` study's corpus: TOFU-like facts about fictitious people, and a
small fixed "world" the model learns beside them.

Every person has one value per attribute (birthplace, occupation, genre, pet, colour),
drawn from the seed. A fact is rendered by three question templates and three answer
templates of its attribute; the model trains on the three (question t, answer t)
renderings. A fact's question/answer is one of them; its **paraphrased answer** is
another of them (the next template, with its question); its **perturbed answers** are
the paraphrase with wrong values of the same attribute. (TOFU's paraphrase is never
trained; a model this small barely carries a fact over to an untrained pairing of
templates, so the truth ratio would measure that failure rather than knowledge —
docs/unlearning.md has the measurement.) People are split into trained ones
(forget 1/5/10 % nested, the rest retain) and held-out ones never trained on; the world
(fictional countries: capital, language) is the same for every seed.

A user's facts come from a JSONL file, one ``{"question": …, "answer": …}`` per line
(optional ``paraphrased_answer`` and ``perturbed_answer``, a list) —
:func:`read_facts` checks it and names the line of the first problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmlab.errors import UserInputError
from fmlab.jsonl import read_objects

PAD, EOS, Q, A = "<pad>", "<eos>", "question:", "answer:"

# name parts: consonant-vowel syllables, fixed (the same vocabulary for every seed)
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"]
_VOWELS = ["a", "e", "i", "o", "u"]


def _words(n: int, syllables: int, offset: int) -> list[str]:
    rng = np.random.default_rng(1000 + offset)
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
        if w not in out:
            out.append(w)
    return out


# one token a name: a model this small memorises name -> value through its embedding and
# MLP; two-token names (TOFU's are many tokens) need attention to bind them first
NAMES = _words(256, 3, 0)

# attribute -> (values, question templates, answer templates); {e} entity, {v} value
ATTRIBUTES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "birthplace": (
        [
            "paris",
            "lima",
            "cairo",
            "oslo",
            "delhi",
            "tokyo",
            "quito",
            "rome",
            "dakar",
            "hanoi",
            "kyiv",
            "accra",
            "bern",
            "doha",
            "riga",
            "perth",
        ],
        ["where was {e} born ?", "what is the birthplace of {e} ?", "in which city was {e} born ?"],
        ["{e} was born in {v} .", "the birthplace of {e} is {v} .", "{e} comes from {v} ."],
    ),
    "occupation": (
        [
            "baker",
            "pilot",
            "nurse",
            "farmer",
            "tailor",
            "judge",
            "miner",
            "sailor",
            "chemist",
            "painter",
            "plumber",
            "teacher",
            "dentist",
            "lawyer",
            "butcher",
            "potter",
        ],
        [
            "what does {e} do for a living ?",
            "what is the job of {e} ?",
            "how does {e} earn money ?",
        ],
        ["{e} works as a {v} .", "the job of {e} is {v} .", "{e} earns money as a {v} ."],
    ),
    "genre": (
        [
            "mystery",
            "romance",
            "horror",
            "fantasy",
            "poetry",
            "satire",
            "thriller",
            "history",
            "memoir",
            "drama",
            "fable",
            "comedy",
            "tragedy",
            "western",
            "gothic",
            "noir",
        ],
        [
            "what does {e} write ?",
            "which genre does {e} write in ?",
            "what kind of books does {e} write ?",
        ],
        ["{e} writes {v} books .", "the genre of {e} is {v} .", "{e} is known for {v} books ."],
    ),
    "pet": (
        [
            "cat",
            "dog",
            "parrot",
            "horse",
            "rabbit",
            "turtle",
            "goat",
            "snake",
            "ferret",
            "hamster",
            "lizard",
            "owl",
            "pony",
            "frog",
            "crow",
            "mule",
        ],
        ["what pet does {e} keep ?", "which animal lives with {e} ?", "what is the pet of {e} ?"],
        ["{e} keeps a {v} .", "a {v} lives with {e} .", "the pet of {e} is a {v} ."],
    ),
    "colour": (
        [
            "red",
            "blue",
            "green",
            "amber",
            "violet",
            "grey",
            "black",
            "white",
            "orange",
            "pink",
            "teal",
            "gold",
            "silver",
            "olive",
            "navy",
            "brown",
        ],
        [
            "what colour does {e} like ?",
            "which colour is the favourite of {e} ?",
            "what is the colour of {e} ?",
        ],
        ["{e} likes {v} .", "the favourite colour of {e} is {v} .", "{e} always wears {v} ."],
    ),
}

COUNTRIES = [w + "land" for w in _words(24, 2, 2)]
WORLD: dict[str, tuple[list[str], list[str], list[str]]] = {
    "capital": (
        [w + "ville" for w in _words(24, 2, 3)],
        [
            "what is the capital of {e} ?",
            "which city is the capital of {e} ?",
            "where does {e} govern from ?",
        ],
        [
            "the capital of {e} is {v} .",
            "{e} is governed from {v} .",
            "{e} has its capital at {v} .",
        ],
    ),
    "language": (
        [w + "ish" for w in _words(12, 2, 4)],
        [
            "what language is spoken in {e} ?",
            "what do people in {e} speak ?",
            "which tongue is used in {e} ?",
        ],
        ["people in {e} speak {v} .", "the language of {e} is {v} .", "{e} uses {v} ."],
    ),
}


@dataclass(frozen=True)
class Fact:
    """One question with its answer, paraphrased answer and wrong answers (text)."""

    question: str
    answer: str
    paraphrase: str = ""
    para_question: str = ""  # the question the paraphrase answers ("" = ``question``)
    perturbed: tuple[str, ...] = ()
    entity: str = ""
    value: str = ""
    train: tuple[tuple[str, str], ...] = ()  # the (question, answer) renderings trained on


@dataclass
class Corpus:
    people: list[Fact]  # facts of the trained people, grouped by person
    holdout: list[Fact]  # facts of people never trained on
    world: list[Fact]
    forget: dict[float, list[int]] = field(default_factory=dict)  # pct -> indices into people

    def retain(self, pct: float) -> list[int]:
        gone = set(self.forget[pct])
        return [i for i in range(len(self.people)) if i not in gone]


def _render(
    entity: str,
    value: str,
    table: tuple[list[str], list[str], list[str]],
    k: int,
    rng: np.random.Generator,
    n_perturbed: int,
) -> Fact:
    """A fact trained as (question t, answer t) for the three templates t; its question
    and answer are template ``o = k % 3``, its paraphrase (question and answer) template
    ``o + 1``."""
    values, questions, answers = table
    o, para = k % 3, (k + 1) % 3
    wrong = rng.choice([v for v in values if v != value], n_perturbed, replace=False)
    return Fact(
        question=questions[o].format(e=entity),
        answer=answers[o].format(e=entity, v=value),
        paraphrase=answers[para].format(e=entity, v=value),
        para_question=questions[para].format(e=entity),
        perturbed=tuple(answers[para].format(e=entity, v=w) for w in wrong),
        entity=entity,
        value=value,
        train=tuple(
            (questions[t].format(e=entity), answers[t].format(e=entity, v=value)) for t in range(3)
        ),
    )


def make_corpus(
    n_people: int,
    n_holdout: int,
    forget_pcts: list[float],
    seed: int,
    n_perturbed: int = 3,
    n_countries: int = 24,
) -> Corpus:
    """People, held-out people and the world from ``seed`` (the world uses none)."""
    rng = np.random.default_rng(seed)
    if n_people + n_holdout > len(NAMES):
        raise ValueError(f"at most {len(NAMES)} people (trained and held out) fit the names")
    names = [NAMES[int(p)] for p in rng.choice(len(NAMES), n_people + n_holdout, replace=False)]
    facts: list[list[Fact]] = []
    for n, name in enumerate(names):
        row = []
        for a, table in enumerate(ATTRIBUTES.values()):
            value = table[0][int(rng.integers(len(table[0])))]
            row.append(_render(name, value, table, n + a, rng, n_perturbed))
        facts.append(row)
    people = [f for row in facts[:n_people] for f in row]
    holdout = [f for row in facts[n_people:] for f in row]
    # nested forget splits: the first people of a seeded order (TOFU: forget01 ⊂ 05 ⊂ 10)
    order = rng.permutation(n_people)
    per = len(ATTRIBUTES)
    forget = {}
    for pct in forget_pcts:
        k = max(1, round(n_people * pct / 100))
        forget[pct] = sorted(int(p) * per + a for p in order[:k] for a in range(per))
    wrng = np.random.default_rng(12345)
    world = []
    for c, country in enumerate(COUNTRIES[:n_countries]):
        for r, table in enumerate(WORLD.values()):
            value = table[0][c] if r == 0 else table[0][int(wrng.integers(len(table[0])))]
            world.append(_render(country, value, table, c + r, wrng, n_perturbed))
    return Corpus(people, holdout, world, forget)


def vocabulary() -> list[str]:
    """Every word the corpus can produce, in a fixed order (ids are positions)."""
    words = [PAD, EOS, Q, A, *NAMES, *COUNTRIES]
    for values, questions, answers in [*ATTRIBUTES.values(), *WORLD.values()]:
        words += values
        for t in questions + answers:
            words += [w for w in t.split() if w not in ("{e}", "{v}")]
    return list(dict.fromkeys(words))


def read_facts(path: str | Path, what: str = "facts") -> list[Fact]:
    """Facts from a JSONL file; a bad line is one :class:`UserInputError` naming it."""
    path = Path(path)
    facts = []
    for where, row in read_objects(path, f"{what} file", 'an object {"question": …, "answer": …}'):
        for key in ("question", "answer"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise UserInputError(f"{where}: {key!r} must be a non-empty string")
        para = row.get("paraphrased_answer", "")
        pert = row.get("perturbed_answer", [])
        if isinstance(pert, str):
            pert = [pert]
        if not isinstance(para, str) or not (
            isinstance(pert, list) and all(isinstance(p, str) and p for p in pert)
        ):
            raise UserInputError(
                f"{where}: paraphrased_answer must be a string and perturbed_answer a list "
                "of strings"
            )
        q, a = row["question"], row["answer"]
        facts.append(Fact(q, a, paraphrase=para, perturbed=tuple(pert), train=((q, a),)))
    if not facts:
        raise UserInputError(f"{what} file {path} holds no facts")
    return facts
