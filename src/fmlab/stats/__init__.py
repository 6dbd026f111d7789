"""Statistics every study reports with: bootstrap CIs, seed aggregation, paired tests.

Conventions: explicit seeds (``np.random.default_rng(seed)``), small frozen result
dataclasses, vectorized resampling.
"""

from fmlab.stats.bootstrap import CI, bootstrap_ci, paired_bootstrap
from fmlab.stats.hypothesis import McNemarResult, PermutationResult, mcnemar, permutation_test
from fmlab.stats.multiple import HolmResult, holm_bonferroni
from fmlab.stats.seeds import (
    BY_SEED,
    CI_HIGH,
    CI_LOW,
    SUFFIXES,
    aggregate_seeds,
    format_mean_ci,
    over_seed_rows,
    over_seeds,
    t_interval,
)

__all__ = [
    "BY_SEED",
    "CI",
    "CI_HIGH",
    "CI_LOW",
    "SUFFIXES",
    "HolmResult",
    "McNemarResult",
    "PermutationResult",
    "aggregate_seeds",
    "bootstrap_ci",
    "format_mean_ci",
    "holm_bonferroni",
    "mcnemar",
    "over_seed_rows",
    "over_seeds",
    "paired_bootstrap",
    "permutation_test",
    "t_interval",
]
