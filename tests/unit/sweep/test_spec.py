"""Sweep specs: parsing, expansion (grid × zip × random × seeds) and validation of every
point through Study.resolve before anything runs."""

import numpy as np
import pytest
from scipy import stats as sps

from fmlab.catalog import get_study
from fmlab.config import ConfigError, config_hash
from fmlab.errors import UserInputError
from fmlab.registry import UnknownNameError
from fmlab.sweep.spec import (
    expand,
    parse_axes,
    parse_random,
    plan,
    random_rows,
    seed_key,
    split_top_level,
    sweep_spec,
)


def test_axes_parse_numbers_strings_and_lists():
    assert split_top_level("[1,2],[3,4]") == ["[1,2]", "[3,4]"]
    axes = parse_axes(["model.d_model=64,128", "train.betas=[0.9,0.98],[0.9,0.99]"], "--grid")
    assert axes == {"model.d_model": [64, 128], "train.betas": [[0.9, 0.98], [0.9, 0.99]]}
    assert parse_axes(["norm=none,layer"], "--grid") == {"norm": [None, "layer"]}
    for bad in ("d_model", "=1,2", "d_model=", "d_model=1,,2"):
        with pytest.raises(UserInputError, match="--grid"):
            parse_axes([bad], "--grid")
    with pytest.raises(UserInputError, match="twice"):
        parse_axes(["a=1", "a=2"], "--grid")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("normal:0:1", "unknown distribution 'normal'"),
        ("uniform:1", "not two numbers"),
        ("uniform:2:1", "lo < hi"),
        ("loguniform:0:1", "lo > 0"),
        ("choice:", "at least one option"),
    ],
)
def test_bad_distributions_are_refused_with_the_usage(text, fragment):
    with pytest.raises(UserInputError, match=fragment):
        parse_random([f"train.lr={text}"])


def test_expansion_is_the_cartesian_product_in_a_stable_order():
    spec = sweep_spec(
        "grokking",
        grid={"a": [1, 2], "b": ["x", "y", "z"]},
        zip={"c": [10, 20], "d": [0.1, 0.2]},
        seeds=2,
    )
    points = expand(spec, "seed")
    assert len(points) == 2 * 3 * 2 * 2
    assert points[0] == {"a": 1, "b": "x", "c": 10, "d": 0.1, "seed": 0}
    assert points[1] == {"a": 1, "b": "x", "c": 10, "d": 0.1, "seed": 1}
    assert points[-1] == {"a": 2, "b": "z", "c": 20, "d": 0.2, "seed": 1}
    assert {(p["c"], p["d"]) for p in points} == {(10, 0.1), (20, 0.2)}  # lock-step
    assert expand(spec, "seeds")[1]["seeds"] == [1]


def test_random_draws_are_seeded_bounded_and_distributed_as_asked():
    axes = {"lr": "loguniform:1e-4:1e-2", "wd": "uniform:0.1:1", "k": "int:1:3", "m": "choice:a|b"}
    spec = sweep_spec("grokking", random=axes, samples=2000, sample_seed=7)
    rows = random_rows(spec)
    assert rows == random_rows(spec)  # same seed, same draws
    assert rows != random_rows(spec.model_copy(update={"sample_seed": 8}))
    lr = np.array([r["lr"] for r in rows])
    wd = np.array([r["wd"] for r in rows])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-2 and wd.min() >= 0.1 and wd.max() <= 1
    assert {r["k"] for r in rows} == {1, 2, 3} and {r["m"] for r in rows} == {"a", "b"}
    # log10(lr) ~ U(-4, -2) and wd ~ U(0.1, 1): a KS test against scipy's uniform
    assert sps.kstest(np.log10(lr), sps.uniform(-4, 2).cdf).pvalue > 1e-3
    assert sps.kstest(wd, sps.uniform(0.1, 0.9).cdf).pvalue > 1e-3


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"zip": {"a": [1, 2], "b": [1]}}, "equal lengths"),
        ({"random": {"a": "uniform:0:1"}}, "samples >= 1"),
        ({"samples": 3}, "no random axis"),
        ({"grid": {"a": [1]}, "zip": {"a": [2]}}, "more than one"),
        ({"grid": {"a": []}}, "no values"),
    ],
)
def test_inconsistent_specs_are_refused(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        sweep_spec("grokking", **kwargs)


def test_plan_resolves_each_point_through_the_study():
    study = get_study("grokking")
    spec = sweep_spec(
        "grokking", "smoke", grid={"model.d_model": [16, 32]}, seeds=3, overrides=["train.steps=5"]
    )
    p = plan(spec)
    assert p.seed_key == "seeds" and p.swept_keys == ["model.d_model", "seeds"]
    assert len(p.points) == 6
    first = p.points[0]
    expected = study.resolve("smoke", ["train.steps=5", "model.d_model=16", "seeds=[0]"])
    assert first.config == expected and first.run_id == config_hash("grokking", expected)
    assert len({pt.run_id for pt in p.points}) == 6


def test_identical_points_are_run_once():
    spec = sweep_spec("grokking", "smoke", grid={"model.d_model": [32, 32, 16]})
    p = plan(spec)
    assert len(p.points) == 2 and p.duplicates == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "fragments"),
    [
        ({"grid": {"model.d_modle": [1]}}, ConfigError, ["model.d_modle", "Did you mean d_model"]),
        ({"grid": {"model.d_model": [32, "abc"]}}, ConfigError, ["point 1", "model.d_model"]),
        ({"grid": {"train.lr": [-1.0]}}, ConfigError, ["train.lr", "greater than 0"]),
        ({"overrides": ["train.stepz=3"]}, ConfigError, ["train.stepz"]),
    ],
)
def test_a_bad_point_fails_naming_the_field(kwargs, error, fragments):
    with pytest.raises(error) as info:
        plan(sweep_spec("grokking", "smoke", **kwargs))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_unknown_study_or_preset_suggests_the_name():
    with pytest.raises(UnknownNameError, match="grokking"):
        plan(sweep_spec("grokkin"))
    with pytest.raises(UnknownNameError, match="quick"):
        plan(sweep_spec("grokking", "quik"))


def test_seed_key_follows_the_config_fields(toy):
    assert seed_key(get_study("sweep-toy").config) == "seed"
    assert seed_key(get_study("grokking").config) == "seeds"
    p = plan(sweep_spec("sweep-toy", "smoke", seeds=3))
    assert [pt.config.seed for pt in p.points] == [0, 1, 2]


def test_seeds_without_a_seed_field_is_a_clear_error(monkeypatch):
    from fmlab.claims import Claim
    from fmlab.config import Config
    from fmlab.study import Study

    class NoSeed(Config):
        x: int = 0

    claims = (Claim("c", "-", "-", "x", ">", 0),)
    study = Study("noseed", "-", "-", NoSeed, {"smoke": NoSeed()}, claims, lambda c, r: {})
    monkeypatch.setattr("fmlab.sweep.spec.get_study", lambda name: study)
    with pytest.raises(UserInputError, match="no int field 'seed' nor list field 'seeds'"):
        plan(sweep_spec("noseed", "smoke", seeds=2))
    assert len(plan(sweep_spec("noseed", "smoke", grid={"x": [1, 2]})).points) == 2
