"""Intervals of bounded quantities stay inside their bounds.

A Student-t interval over seeds (or a normal-approximation interval) is symmetric, so an
accuracy of 0.9997 over seeds gets ``[0.9983, 1.001]`` and an accuracy near 0 a negative
lower end — values the quantity cannot take. The rule, applied wherever an interval is
computed or shown (:func:`~fmlab.stats.seeds.over_seeds`, ``aggregate_seeds``, claims,
reports, figure bands): an interval of a quantity bounded to ``[0, 1]`` is clipped to it.
Clipping keeps the coverage of the interval (the true value lies inside the bounds) and
never moves an end that was already inside them.

Which quantities are bounded is told by their summary names: a name is a fraction when
one of its ``_``-separated words is an accuracy/fraction/probability word (``acc``,
``frac``, ``fpr`` …) and none says it is a difference, a ratio, a count or a time
(``gain``, ``gap``, ``diff``, ``ratio``, ``step`` …): ``test_acc_final`` and
``fourier_top_k_frac_final`` are fractions; ``acc_gain``, ``lp_ft_minus_ft_ood_acc`` and
``grokfast_step_test_acc_95`` (a step count) are not. A caller that knows better passes
``bounds`` explicitly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

__all__ = ["UNIT", "clip_interval", "interval_bounds", "is_fraction"]

UNIT = (0.0, 1.0)
_FRACTION_WORDS = frozenset(
    ("acc", "accuracy", "accuracies", "frac", "fraction", "share", "prob", "probability",
     "auc", "fpr", "tpr", "precision", "agreement", "coverage", "cka",
     "gini", "win", "ece", "em")
)  # fmt: skip
_NOT_A_FRACTION = frozenset(
    ("gain", "gap", "diff", "difference", "delta", "minus", "drop", "change", "ratio", "lift",
     "excess", "improvement", "slope", "log", "logit", "z", "zscore", "step", "steps", "epoch",
     "epochs", "time", "seconds", "tokens", "count", "n")
)  # fmt: skip


def is_fraction(name: str) -> bool:
    """Whether the summary metric ``name`` is a fraction in ``[0, 1]`` (see the module)."""
    words = set(re.split(r"[_.:\-\s]+", name.lower()))
    return bool(words & _FRACTION_WORDS) and not words & _NOT_A_FRACTION


def interval_bounds(name: str, values: Sequence[float | None] = ()) -> tuple[float, float] | None:
    """``(0, 1)`` for a fraction whose known values all lie in it; else ``None``."""
    if not is_fraction(name):
        return None
    inside = all(v is None or (isinstance(v, int | float) and 0 <= v <= 1) for v in values)
    return UNIT if inside else None


def clip_interval(
    low: float | None, high: float | None, bounds: tuple[float, float] | None
) -> tuple[float | None, float | None]:
    """``(low, high)`` clipped to ``bounds`` (None and NaN ends are left as they are)."""
    if bounds is None:
        return low, high
    lo, hi = bounds

    def clip(x: float | None) -> float | None:
        if x is None or not isinstance(x, int | float) or math.isnan(x):
            return x
        return float(min(max(x, lo), hi))

    return clip(low), clip(high)
