"""fmlab: a laboratory for the mathematical and empirical understanding of foundation models."""

__version__ = "0.1.0"
