import pytest
import torch

from fmlab.config import ConfigError
from fmlab.tasks.modular import ModularConfig, all_pairs, make_data


@pytest.mark.parametrize(
    ("op", "fn"),
    [
        ("add", lambda a, b, p: (a + b) % p),
        ("sub", lambda a, b, p: (a - b) % p),
        ("mul", lambda a, b, p: (a * b) % p),
        ("div", lambda a, b, p: (a * pow(b, -1, p)) % p),
        ("cond", lambda a, b, p: (a * pow(b, -1, p)) % p if b % 2 else (a - b) % p),
        ("x2_xy_y2", lambda a, b, p: (a * a + a * b + b * b) % p),
        ("x3_xy", lambda a, b, p: (a**3 + a * b) % p),
    ],
)
def test_every_operation_matches_python_arithmetic(op, fn):
    p = 11
    x, y = all_pairs(ModularConfig(p=p, op=op))
    expected = [fn(int(a), int(b), p) for a, b in x[:, :2]]
    assert y.tolist() == expected
    assert torch.all(x[:, 2] == p)  # the "=" token
    assert len(y) == (p * (p - 1) if op in ("div", "cond") else p * p)


def test_split_is_deterministic_disjoint_and_complete():
    cfg = ModularConfig(p=13, train_frac=0.3, seed=4)
    a, b = make_data(cfg), make_data(cfg)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    train = {tuple(r) for r in a.train_x.tolist()}
    test = {tuple(r) for r in a.test_x.tolist()}
    assert not train & test and len(train) + len(test) == 169
    assert len(train) == round(0.3 * 169)
    other = make_data(cfg.override("seed=5"))
    assert not torch.equal(a.train_x, other.train_x)


def test_division_needs_a_prime_and_the_split_a_valid_fraction():
    with pytest.raises(ConfigError, match="prime"):
        ModularConfig().override("p=12", "op=div")
    with pytest.raises(ConfigError, match="train_frac"):
        ModularConfig().override("train_frac=1.5")
    data = make_data(ModularConfig(p=7))
    assert data.vocab_size == 8 and data.seq_len == 3
