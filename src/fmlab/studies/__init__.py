"""The bundled studies; importing this package registers them in ``fmlab.study.STUDIES``."""

from fmlab.studies import (  # noqa: F401
    grokking,
    icl,
    induction,
    inspection,
    moe,
    recall,
    representations,
    scaling,
)
