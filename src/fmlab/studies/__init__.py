"""The bundled studies: one package each, ``studies/<name>/`` (the study name with ``-``
spelled ``_``), found by :mod:`fmlab.catalog` — nothing here lists them, so a new study
is one new package. Importing this package imports none of them."""
