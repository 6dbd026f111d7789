"""How well a fitted law fits, on the scale the fits minimise on (``log L``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LogFitQuality:
    """How well a law fits, measured on ``log L`` — the scale every fit here minimises on."""

    r2: float  # 1 - SS_res / SS_tot of log L
    rmse: float  # root mean squared residual of log L (≈ relative error of L)
    max_abs: float  # the worst point's |log L - log L̂|
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"r2_log": self.r2, "rmse_log": self.rmse, "max_abs_log": self.max_abs}


def log_fit_quality(observed: Any, predicted: Any) -> LogFitQuality:
    """R² and RMSE of ``log observed - log predicted`` (both positive arrays)."""
    y, yhat = np.log(np.asarray(observed, float)), np.log(np.asarray(predicted, float))
    resid = y - yhat
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(resid @ resid) / ss_tot if ss_tot > 0 else float("nan")
    return LogFitQuality(r2, float(np.sqrt(np.mean(resid**2))), float(np.abs(resid).max()), len(y))
