"""fmlab's version, in a module of its own so that anything may import it without
importing the package's public API (and so without a cycle through ``fmlab/__init__``)."""

__version__ = "0.1.0"
