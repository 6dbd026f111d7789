import pytest

from fmlab.claims import Claim


def claim(**kw):
    base = dict(id="c", source="S", statement="s", metric="m", op=">=", threshold=3.0)
    return Claim(**(base | kw))


def test_value_comparisons():
    assert claim().evaluate({"m": 3.0})["passed"] is True
    assert claim().evaluate({"m": 2.9})["passed"] is False
    assert claim(op="<").evaluate({"m": 2.9})["passed"] is True
    assert claim().evaluate({"m": 4})["threshold"] == ">= 3"


def test_missing_or_unreached_metric_fails_with_a_note():
    for metrics in ({}, {"m": None}, {"m": float("nan")}):
        result = claim().evaluate(metrics)
        assert result["passed"] is False and "not reached" in result["note"]


def test_ci_decides_when_asked():
    metrics = {"m": 5.0, "m_ci_low": 2.0, "m_ci_high": 8.0}
    assert claim().evaluate(metrics)["passed"] is True
    strict = claim(decide_by="ci").evaluate(metrics)
    assert strict["passed"] is False and strict["ci"] == [2.0, 8.0]
    assert claim(decide_by="ci", op="<=", threshold=9).evaluate(metrics)["passed"] is True
    # without a CI (one seed) the value decides
    assert claim(decide_by="ci").evaluate({"m": 5.0})["passed"] is True


def test_bad_operator():
    with pytest.raises(ValueError, match="op must be"):
        claim(op="=>")


def test_optional_claim_is_not_tested_when_its_metric_is_absent():
    result = claim(optional=True).evaluate({})
    assert result["passed"] is None and "not tested" in result["note"]
    assert claim(optional=True).evaluate({"m": None})["passed"] is False  # measured, unreached
