"""Input checks shared by every fit and by the CLI.

A scaling-law fit works in log space, so a zero or negative size, token count or loss is not a
small error but a crash or a silently wrong fit. These checks name the offending rows so that
the user can find them in their own table.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["check_positive_finite", "validate_scaling_table"]

_MAX_LISTED = 20


def _label_list(labels: Sequence[Any]) -> str:
    shown = ", ".join(repr(x) if isinstance(x, str) else str(x) for x in labels[:_MAX_LISTED])
    more = len(labels) - _MAX_LISTED
    return f"[{shown}{f', … ({more} more)' if more > 0 else ''}]"


def _labels(values: Any, mask: np.ndarray) -> list[Any]:
    """Index labels of a pandas Series, positions otherwise."""
    if isinstance(values, pd.Series):
        return [x.item() if hasattr(x, "item") else x for x in values.index[mask]]
    return np.flatnonzero(mask).tolist()


def check_positive_finite(
    arrays: Mapping[str, Any], *, positive: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Convert named 1-D inputs to float arrays, raising ``ValueError`` on bad rows.

    NaN, ±inf and (for the names in ``positive``, default all) values ``<= 0`` are errors that
    name the rows: by their pandas index labels when the input is a Series, else by position.
    Fits never drop rows silently; use :func:`validate_scaling_table` to drop NaN rows first.
    """
    positive = list(arrays) if positive is None else list(positive)
    out: dict[str, np.ndarray] = {}
    for name, values in arrays.items():
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be numeric: {err}") from None
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
        for bad, what in (
            (np.isnan(arr), "NaN"),
            (np.isinf(arr), "infinite"),
            ((arr <= 0) if name in positive else np.zeros(arr.shape, bool), "non-positive"),
        ):
            if bad.any():
                rows = _label_list(_labels(values, bad))
                raise ValueError(f"{name} has {what} values at rows {rows}")
        out[name] = arr
    lengths = {name: len(a) for name, a in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs must have the same length, got {lengths}")
    return out


def validate_scaling_table(
    df: pd.DataFrame, cols: Sequence[str], *, positive: Sequence[str] | None = None
) -> pd.DataFrame:
    """Check a table of runs before a fit; returns a copy without NaN rows.

    - a missing column raises ``ValueError`` naming it (and the columns that exist);
    - rows with NaN in ``cols`` are dropped with a warning that lists their index labels
      (an unfinished run is common and should not block a fit, but must not pass unseen);
    - ±inf, non-numeric columns, and values ``<= 0`` in ``positive`` (default: all ``cols``)
      raise ``ValueError`` naming the rows.
    """
    cols = list(cols)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the table has {list(df.columns)}")
    for c in cols:
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise ValueError(f"column {c!r} must be numeric, got dtype {df[c].dtype}")
    nan_rows = df[cols].isna().any(axis=1).to_numpy()
    if nan_rows.any():
        labels = _label_list(list(df.index[nan_rows]))
        warnings.warn(
            f"dropping {int(nan_rows.sum())} row(s) with NaN in {cols}: {labels}",
            UserWarning,
            stacklevel=2,
        )
    clean = df.loc[~nan_rows].copy()
    check_positive_finite({c: clean[c] for c in cols}, positive=positive)
    return clean
