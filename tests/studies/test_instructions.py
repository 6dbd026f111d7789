"""The ``instructions`` study: the primitives against a plain-Python reference, the
compositions' scratchpad, the cluster splits (held-out parts all seen, untrained orders
never trained), the training mixtures (k = 0 is primitives only), the grader, the fitted
slope, an end-to-end smoke run with its figures, and one-line errors for bad configs. The
quick preset's claims are checked by running it (docs/instructions.md), not here."""

from __future__ import annotations

import json

import pytest
import torch

from fmlab import get_study
from fmlab.config import ConfigError
from fmlab.studies.instructions.evaluate import final_correct
from fmlab.studies.instructions.summary import slope
from fmlab.studies.instructions.task import (
    ADD_MAX,
    FAMILIES,
    MUL_ARGS,
    PAD,
    TOK,
    VOCAB,
    apply,
    clusters,
    compositions,
    make_split,
    mixture,
    singles,
)

STUDY = get_study("instructions")


def reference(name: str, arg: int | None, x: list[int]) -> list[int]:
    """The primitives written out in plain Python, from their argument *value*."""
    if name == "reverse":
        return x[::-1]
    if name == "sort":
        return sorted(x)
    if name == "swap":
        out = list(x)
        for i in range(0, len(x) - 1, 2):
            out[i], out[i + 1] = x[i + 1], x[i]
        return out
    if name == "rotate":
        return x[arg:] + x[:arg]
    if name == "add":
        return [(d + arg) % 10 for d in x]
    return [(d * arg) % 10 for d in x]


def _value(token: int) -> int | None:
    word = VOCAB[token]
    return int(word) if word.isdigit() else None


@pytest.mark.parametrize("length", [3, 4, 5])
def test_singles_match_the_reference_for_every_family_and_argument(length):
    g = torch.Generator().manual_seed(length)
    seen: dict[str, set] = {f: set() for f in FAMILIES}
    for f in range(len(FAMILIES)):
        rows = singles(200, length, g, families=torch.full((200,), f))
        for row in rows.ids.tolist():
            name, arg = VOCAB[row[0]], _value(row[1])
            x, y = row[3 : 3 + length], row[4 + length : 4 + 2 * length]
            assert row[2] == TOK[":"] and row[3 + length] == TOK["="] and row[-1] == TOK["<eos>"]
            assert y == reference(name, arg, x), (name, arg, x, y)
            seen[name].add(arg)
    assert seen["rotate"] == set(range(1, length)) and seen["add"] == set(range(1, ADD_MAX + 1))
    assert seen["mul"] == set(MUL_ARGS) and seen["reverse"] == {None}


def test_compositions_write_the_intermediate_then_the_final_string():
    g = torch.Generator().manual_seed(0)
    L = 5
    pairs = torch.tensor([[a, b] for a in range(6) for b in range(6) if a != b])
    rows = compositions(pairs, 300, L, g)
    assert rows.prompt == L + 7
    for row in rows.ids.tolist():
        a, arg_a, then, b, arg_b = row[:5]
        assert then == TOK["then"]
        x = row[6 : 6 + L]
        mid, y = row[7 + L : 7 + 2 * L], row[8 + 2 * L : 8 + 3 * L]
        assert row[7 + 2 * L] == TOK[";"] and row[-1] == TOK["<eos>"]
        assert mid == reference(VOCAB[a], _value(arg_a), x)
        assert y == reference(VOCAB[b], _value(arg_b), mid)


def test_apply_is_the_identity_only_where_it_should_be():
    x = torch.tensor([[3, 1, 4, 1, 5]])
    for f, name in enumerate(FAMILIES):
        y = apply(torch.tensor([f]), torch.tensor([0]), x)
        assert (y != x).any(), name  # each primitive changes this string


@pytest.mark.parametrize("seed", range(6))
def test_splits_hold_out_combinations_whose_parts_were_trained(seed):
    split = make_split(5, seed)
    every = set(clusters())
    trained = {tuple(sorted(p)) for p in split.train}
    held = set(split.heldout)
    assert len(held) == 5 and trained | held == every and not trained & held
    assert {f for p in split.train for f in p} == set(range(len(FAMILIES)))
    rev = set(split.reversed_order(len(split.train)))
    assert not rev & set(split.train)  # the held-out order is never a trained one
    assert {tuple(sorted(p)) for p in rev} == trained
    assert make_split(5, seed) == split
    assert make_split(5, seed + 100) != split


def test_k_zero_is_primitives_only_and_k_clusters_draw_only_their_pairs():
    g = torch.Generator().manual_seed(1)
    ids, target = mixture(torch.zeros(0, 2, dtype=torch.long), 64, 4, 0.5, g)
    assert not (ids == TOK["then"]).any()
    pairs = torch.tensor([[0, 3]])
    ids, target = mixture(pairs, 64, 4, 0.25, g)
    comp = (ids == TOK["then"]).any(1)
    assert int(comp.sum()) == 48
    assert (ids[comp, 0] == 10 + 0).all() and (ids[comp, 3] == 10 + 3).all()
    assert not target[ids == PAD].any() and target.any(1).all()


def test_grader_checks_the_final_string_only():
    g = torch.Generator().manual_seed(2)
    L = 4
    rows = compositions(torch.tensor([[0, 4]]), 8, L, g)
    truth = rows.ids[:, rows.prompt :][None]  # (1, N, A)
    assert final_correct(rows, truth, L).all()
    wrong_mid = truth.clone()
    wrong_mid[..., 0] = (wrong_mid[..., 0] + 1) % 10  # scratchpad only
    assert final_correct(rows, wrong_mid, L).all()
    wrong_final = truth.clone()
    wrong_final[0, 3, L + 1] = (wrong_final[0, 3, L + 1] + 1) % 10
    got = final_correct(rows, wrong_final, L)[0]
    assert not got[3] and got[torch.arange(8) != 3].all()


def test_slope_is_per_doubling_of_k():
    assert slope([1, 2, 4, 8], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.1)
    assert slope([1, 2, 4], [0.5, 0.5, 0.5]) == 0.0


def test_smoke_run_reports_claims_and_figures(tmp_path, one_thread):
    from typer.testing import CliRunner

    from fmlab.cli import app

    result = CliRunner().invoke(
        app, ["run", "instructions", "-p", "smoke", "--threads", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "instructions").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert {c["id"] for c in summary["claims"]} == {c.id for c in STUDY.claims}
    m = summary["metrics"]
    for kind in ("single", "reversed", "heldout"):
        assert len(m[f"{kind}_acc_k0_by_seed"]) == 2
    assert "trained_acc_k0_by_seed" not in m  # the base has no trained compositions
    assert m["heldout_gap_kmax_vs_k1_by_seed"] == pytest.approx(
        [
            a - b
            for a, b in zip(m["heldout_acc_k3_by_seed"], m["heldout_acc_k1_by_seed"], strict=True)
        ]
    )
    figs = {p.stem for p in (run / "artifacts" / "figures").glob("*.png")}
    assert {"accuracy_vs_clusters", "heldout_by_seed"} <= figs


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ks=[1,2,4]", "ks must start 0, 1"),
        ("ks=[0,1,4,4]", "increasing and distinct"),
        ("ks=[0,1,12]", "only 10 are left for training"),
        ("n_heldout=14", "n_heldout"),
    ],
)
def test_inconsistent_configs_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        STUDY.resolve("quick", [override])


def test_cli_bad_config_is_one_error_line():
    from typer.testing import CliRunner

    from fmlab.cli import app

    result = CliRunner().invoke(app, ["run", "instructions", "-p", "smoke", "--set", "ks=[0,2,3]"])
    assert result.exit_code == 2
    text = result.output.strip()
    # the runner's config-error form: a header naming the config, then the field's line
    assert "Traceback" not in text and len(text.splitlines()) == 2
    assert text.splitlines()[1].strip().startswith("(config): ks must start 0, 1")
