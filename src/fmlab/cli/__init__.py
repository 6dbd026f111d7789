"""The ``fmlab`` command line. Each command group lives in its own module."""

from fmlab.cli import core  # noqa: F401  (registers commands)
from fmlab.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
