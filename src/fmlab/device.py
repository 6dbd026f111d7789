"""Where a run computes: ``--device auto|cpu|cuda|cuda:N|mps``.

The device is an execution choice, not part of the science: it is not in the config, so
a run has the same id on a CPU and a GPU (its ``summary.json`` records where it ran).
Results may still differ in the last bits between devices — kernels sum in different
orders, and TF32 or bf16 (``train.precision``) round differently — so claims are judged
on each run's own numbers.

Randomness stays on the CPU: every weight is initialised and every batch sampled from
explicit CPU ``torch.Generator``s, then moved. The same seed therefore gives the same
initial weights and the same data on every device.

The runner sets the device for the duration of a run (:func:`use`); a study moves its
models and data there with :func:`place`, and the training loop moves each batch to its
model's device, so a study written for the CPU runs on a GPU by placing what it builds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import torch
from torch import nn

from fmlab.errors import UserInputError

T = TypeVar("T")
_current: ContextVar[torch.device | None] = ContextVar("fmlab_device", default=None)
CHOICES = "auto | cpu | cuda | cuda:N | mps"


def resolve(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` → CUDA if available, else MPS, else CPU; anything else is checked to
    exist here (a clear error names what is available)."""
    if isinstance(spec, torch.device):
        return spec
    text = (spec or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UserInputError(f"--device {spec!r}: choose {CHOICES}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserInputError(f"--device {spec!r}: no CUDA GPU here ({available()})")
        if device.index is not None and device.index >= count:
            raise UserInputError(f"--device {spec!r}: this machine has {count} CUDA GPU(s)")
    elif device.type == "mps" and not _mps_available():
        raise UserInputError(f"--device {spec!r}: MPS is not available here ({available()})")
    elif device.type not in ("cpu", "cuda", "mps", "meta"):
        raise UserInputError(f"--device {spec!r}: choose {CHOICES}")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available() -> str:
    """What this machine offers, for messages and ``fmlab list``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [
            f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())
        ]
    if _mps_available():
        found.append("mps")
    return "available: " + ", ".join(found)


def current() -> torch.device:
    """The device of the run being executed (the CPU outside a run)."""
    return _current.get() or torch.device("cpu")


@contextmanager
def use(device: str | torch.device | None) -> Iterator[torch.device]:
    """Run the block with ``device`` as the current one."""
    resolved = resolve(device)
    token = _current.set(resolved)
    try:
        yield resolved
    finally:
        _current.reset(token)


def place(obj: T, device: torch.device | None = None) -> T:
    """``obj`` on ``device`` (default: the current one): a module (in place), a tensor, or
    a tuple, list, dict or dataclass of them (a copy); anything else unchanged."""
    device = current() if device is None else device
    return _move(obj, device)


def _move(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, nn.Module):
        return obj.to(device)
    if isinstance(obj, torch.Tensor):
        return obj if obj.device == device else obj.to(device)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
        return type(obj)(*(_move(v, device) for v in obj))
    if isinstance(obj, list | tuple):
        return type(obj)(_move(v, device) for v in obj)
    if isinstance(obj, Mapping):
        return type(obj)({k: _move(v, device) for k, v in obj.items()})
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        moved = {
            f.name: _move(getattr(obj, f.name), device) for f in dataclasses.fields(obj) if f.init
        }
        return dataclasses.replace(obj, **moved)
    return obj


def device_of(module: nn.Module) -> torch.device:
    """Where a module's parameters live (the CPU for a module without any)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")
