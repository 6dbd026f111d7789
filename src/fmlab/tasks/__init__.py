"""Data sources: one module per task, each generating its data from an explicit seed."""

from fmlab.registry import Registry

TASKS: Registry[object] = Registry("task")

__all__ = ["TASKS"]
