"""The bundled studies; importing this package registers them in ``fmlab.study.STUDIES``."""

from fmlab.studies import grokking  # noqa: F401
