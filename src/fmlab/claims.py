"""Claims: the published results a study reproduces, checked against its own metrics.

A claim names a summary metric, a comparison and a threshold taken from the paper. It
is evaluated from the run's metrics only, so a report can re-check it without training.
When the metric comes with a confidence interval (``<metric>_ci_low``/``_ci_high`` in
the metrics), the interval is shown, and ``decide_by`` can make the claim pass only if
the whole interval clears the threshold. An ``optional`` claim whose metric the run
did not measure at all (e.g. a comparison that was switched off) is "not tested".
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fmlab.stats.bounds import clip_interval, interval_bounds
from fmlab.stats.seeds import CI_HIGH, CI_LOW

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Claim:
    id: str
    source: str
    statement: str
    metric: str
    op: Literal[">=", "<=", ">", "<"]
    threshold: float
    decide_by: Literal["value", "ci"] = "value"
    optional: bool = False  # absent metric ⇒ "not tested" (passed None), not a failure

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"claim {self.id}: op must be one of {list(OPS)}, got {self.op!r}")

    def evaluate(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        value = _number(metrics.get(self.metric))
        lo = _number(metrics.get(f"{self.metric}{CI_LOW}"))
        hi = _number(metrics.get(f"{self.metric}{CI_HIGH}"))
        # a fraction's interval stays in [0, 1], whoever computed it (fmlab.stats.bounds)
        lo, hi = clip_interval(lo, hi, interval_bounds(self.metric, [value]))
        ci = [lo, hi] if lo is not None and hi is not None else None
        compare = OPS[self.op]
        if self.optional and self.metric not in metrics:
            passed, note = None, "not tested in this configuration"
        elif value is None:
            passed, note = False, f"metric {self.metric!r} was not reached or not measured"
        elif self.decide_by == "ci" and ci is not None:
            bound = lo if self.op in (">=", ">") else hi
            passed = bool(compare(bound, self.threshold))
            end = "lower" if self.op in (">=", ">") else "upper"
            note = (
                "decided by the 95% CI bound"
                if passed
                else f"the 95% CI's {end} end {bound:.4g} is not {self.op} {self.threshold:g}"
            )
        else:
            passed = bool(compare(value, self.threshold))
            note = "" if passed else f"measured {value:.4g}, not {self.op} {self.threshold:g}"
        return {
            "id": self.id,
            "source": self.source,
            "statement": self.statement,
            "metric": self.metric,
            "value": value,
            "ci": ci,
            "threshold": f"{self.op} {self.threshold:g}",
            "passed": passed,
            "note": note,
        }


def shown_ci(result: Mapping[str, Any]) -> list[float] | None:
    """An evaluated claim's interval as it is shown: a fraction's clipped to [0, 1], also
    for summaries written before the rule (fmlab.stats.bounds)."""
    ci = result.get("ci")
    if not ci or len(ci) != 2:
        return None
    low, high = clip_interval(ci[0], ci[1], interval_bounds(str(result.get("metric", "")),
                                                            [result.get("value")]))  # fmt: skip
    return [low, high]


def reason(result: Mapping[str, Any]) -> str:
    """Why an evaluated claim (a summary's entry) holds, fails or was not tested, in one
    line — for a failing claim the measured value (or the deciding CI end) against the
    threshold, also for summaries written before claims carried their reasons."""
    note = str(result.get("note") or "")
    passed, value, ci = result.get("passed"), result.get("value"), result.get("ci")
    if passed is None:
        return note or "not tested"
    if passed is True or value is None:
        return note if note or passed else f"metric {result.get('metric')!r} was not reached"
    threshold = str(result.get("threshold", ""))
    if ci and "CI" in note:
        upper = threshold.startswith("<")
        end = ci[1] if upper else ci[0]
        return f"the 95% CI's {'upper' if upper else 'lower'} end {end:.4g} is not {threshold}"
    return f"measured {value:.4g}, not {threshold}"


def _number(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) or math.isinf(x) else x


def evaluate_claims(claims: tuple[Claim, ...], metrics: Mapping[str, Any]) -> list[dict]:
    return [c.evaluate(metrics) for c in claims]
