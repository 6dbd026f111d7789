"""The figures of ``fmlab fit``, drawn only when asked (matplotlib is imported here)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def chinchilla_figures(fit: Any, df: pd.DataFrame) -> dict[str, Any]:
    from fmlab.fit.figures import chinchilla_figures as draw

    return draw(fit.params_, df.N, df.D, df.loss, bootstrap=getattr(fit, "bootstrap_", None))


def power_law_figures(fit: Any, df: pd.DataFrame, x_col: str, y_col: str) -> dict[str, Any]:
    from fmlab.fit.figures import power_law_figure

    return {"power_law": power_law_figure(fit, df.x, df.y, xlabel=x_col, ylabel=y_col)}


def isoflop_figures(fit: Any, df: pd.DataFrame) -> dict[str, Any]:
    from fmlab.fit.figures import isoflop_figures as draw

    return draw(fit, df.N, df.loss, df.C)
