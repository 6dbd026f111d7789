"""Each mixer's typed config inside GPTConfig: nested and flat spellings, errors, ids."""

import pytest

from fmlab.config import ConfigError, config_hash, validate
from fmlab.models import GPTConfig
from fmlab.models.mixers.attention import AttentionConfig
from fmlab.models.mixers.ssm import SSMConfig


def test_a_name_becomes_that_mixers_config_with_its_defaults():
    cfg = GPTConfig(mixer="ssm")
    assert isinstance(cfg.mixer, SSMConfig) and cfg.mixer.d_state == 16
    assert isinstance(GPTConfig().mixer, AttentionConfig)


def test_flat_and_nested_spellings_are_the_same_config():
    flat = GPTConfig().override("mixer=ssm", "d_state=8")
    nested = GPTConfig().override("mixer.kind=ssm", "mixer.d_state=8")
    assert flat == nested == GPTConfig(mixer={"kind": "ssm", "d_state": 8})
    assert config_hash("s", flat) == config_hash("s", nested)


def test_dump_round_trips_through_validation():
    cfg = GPTConfig(mixer={"kind": "hyena", "filter_len": 12, "long_filter": "explicit"})
    data = cfg.model_dump(mode="json")
    assert data["mixer"] == {"kind": "hyena", "long_filter": "explicit", "filter_len": 12}
    assert validate(GPTConfig, data) == cfg


def test_an_option_of_another_mixer_is_refused_by_name():
    with pytest.raises(ConfigError, match="d_state is an option of the ssm mixer"):
        GPTConfig().override("d_state=8")
    with pytest.raises(ConfigError, match=r"mixer\.windw: unknown field\. Did you mean window"):
        GPTConfig().override("mixer.windw=3")


def test_an_old_config_carrying_every_flat_option_at_its_default_still_loads():
    old = {"mixer": "hyena", "attn_window": None, "d_state": 16, "feature_map": "taylor",
           "feature_dim": 16, "long_filter": "implicit", "filter_len": 64}  # fmt: skip
    assert validate(GPTConfig, old).mixer.filter_len == 64


def test_unknown_mixer_lists_the_known_ones():
    with pytest.raises(ConfigError, match="mixer 'mamba9' is not one of: attention, hyena"):
        validate(GPTConfig, {"mixer": "mamba9"})
