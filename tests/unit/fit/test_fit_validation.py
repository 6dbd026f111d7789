import numpy as np
import pandas as pd
import pytest

from fmlab.fit import check_positive_finite, validate_scaling_table


def _table():
    return pd.DataFrame(
        {"N": [1e8, 2e8, np.nan, 4e8], "D": [1e9, 2e9, 3e9, np.nan], "loss": [3.0, 2.8, 2.7, 2.6]},
        index=["run-a", "run-b", "run-c", "run-d"],
    )


def test_nan_rows_are_dropped_with_a_warning_naming_them():
    with pytest.warns(UserWarning, match=r"dropping 2 row\(s\).*'run-c', 'run-d'"):
        clean = validate_scaling_table(_table(), ["N", "D", "loss"])
    assert clean.index.tolist() == ["run-a", "run-b"]
    clean = validate_scaling_table(_table(), ["loss"])  # no NaN in the checked column
    assert len(clean) == 4


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['C', 'tokens'\]"):
        validate_scaling_table(_table(), ["N", "C", "tokens"])


def test_non_positive_and_infinite_values_raise_naming_rows():
    df = _table().dropna()
    df.loc["run-b", "loss"] = 0.0
    with pytest.raises(ValueError, match=r"loss has non-positive values at rows \['run-b'\]"):
        validate_scaling_table(df, ["N", "D", "loss"])
    validate_scaling_table(df, ["N", "D", "loss"], positive=["N", "D"])  # loss may be 0 here
    df.loc["run-a", "N"] = np.inf
    with pytest.raises(ValueError, match=r"N has infinite values at rows \['run-a'\]"):
        validate_scaling_table(df, ["N"])


def test_non_numeric_column():
    df = _table().assign(N=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="numeric"):
        validate_scaling_table(df, ["N"])


def test_check_positive_finite_on_arrays():
    out = check_positive_finite({"x": [1, 2, 3], "y": [0.5, 1.0, 2.0]})
    assert out["x"].dtype == float
    with pytest.raises(ValueError, match=r"x has non-positive values at rows \[1\]"):
        check_positive_finite({"x": [1.0, -2.0]})
    with pytest.raises(ValueError, match="same length"):
        check_positive_finite({"x": [1.0, 2.0], "y": [1.0]})
    many = np.ones(50)
    many[::2] = -1
    with pytest.raises(ValueError, match=r"\(5 more\)"):
        check_positive_finite({"x": many})
