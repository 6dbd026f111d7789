"""The ``fmlab`` command line. Each command group lives in its own module."""

from fmlab.cli import (
    compare,  # noqa: F401  (registers `fmlab compare`)
    core,  # noqa: F401  (registers commands)
    export,  # noqa: F401  (registers `fmlab export`)
    fit,  # noqa: F401  (registers `fmlab fit …`)
    inspect,  # noqa: F401  (registers `fmlab inspect`)
    show,  # noqa: F401  (registers `fmlab show`)
    sweep,  # noqa: F401  (registers `fmlab sweep | status | table`)
    unlearn,  # noqa: F401  (registers `fmlab unlearn`)
    unlock,  # noqa: F401  (registers `fmlab unlock`)
    watermark,  # noqa: F401  (registers `fmlab watermark generate | detect`)
)
from fmlab.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
