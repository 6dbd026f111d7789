"""Fitting scaling laws and transitions (scikit-learn shape: ``fit`` returns self).

- :class:`PowerLaw`, :class:`SaturatingPowerLaw`: ``L = A x^-α`` and ``L = E + A x^-α``;
- :class:`ChinchillaFit`: ``L(N, D) = E + A/N^α + B/D^β``, Hoffmann et al. 2022 approach 3;
- :class:`IsoFlopFit`: approach 2 (parabolas per FLOP budget, then power laws);
- :class:`ApproachGap`: paired bootstrap of a(approach 3) − a(approach 2) on the same runs;
- :class:`TransitionFit`: sigmoid fit of a sharp change in a training curve;
- :func:`compare_shapes`: an abrupt (sigmoid in log x) or a smooth (power-law) trend, by
  leave-one-out error, with :func:`bootstrap_log_ratio` for its CI;
- :func:`validate_scaling_table`: checks a table of runs before any of these.
"""

from fmlab.fit._common import FitWarning
from fmlab.fit.abrupt import ShapeComparison, bootstrap_log_ratio, compare_shapes
from fmlab.fit.approaches import ApproachGap
from fmlab.fit.chinchilla import HOFFMANN_GRID, ChinchillaFit, ChinchillaParams
from fmlab.fit.datasets import HOFFMANN_PARAMS, load_chinchilla_epoch, sample_chinchilla
from fmlab.fit.isoflop import IsoFlopFit
from fmlab.fit.power import PowerLaw, SaturatingPowerLaw
from fmlab.fit.transitions import Changepoint, TransitionFit, fit_changepoint
from fmlab.fit.validation import check_positive_finite, validate_scaling_table

__all__ = [
    "HOFFMANN_GRID",
    "HOFFMANN_PARAMS",
    "ApproachGap",
    "Changepoint",
    "ChinchillaFit",
    "ChinchillaParams",
    "FitWarning",
    "IsoFlopFit",
    "PowerLaw",
    "SaturatingPowerLaw",
    "ShapeComparison",
    "TransitionFit",
    "bootstrap_log_ratio",
    "check_positive_finite",
    "compare_shapes",
    "fit_changepoint",
    "load_chinchilla_epoch",
    "sample_chinchilla",
    "validate_scaling_table",
]
