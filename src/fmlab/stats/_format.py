"""Number formatting shared by the result dataclasses."""

from __future__ import annotations

import math

__all__ = ["format_number"]


def format_number(x: float, sig: int = 3) -> str:
    """``x`` with ``sig`` significant digits, in plain notation for 1e-3 <= |x| < 1e6."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if -3 <= mag < 6:
        return f"{x:.{max(0, sig - 1 - mag)}f}"
    return f"{x:.{sig - 1}e}"
