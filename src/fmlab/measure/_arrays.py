"""Conversion at the edge: instruments accept torch tensors or numpy arrays alike.

Everything is turned into a float64 numpy array once, on entry, so that the arithmetic
inside an instrument is the same whatever framework produced the numbers, and so that
sums of many squares (HSIC, covariances) do not lose precision in float32/bfloat16.
torch is never imported here: a tensor can only exist if its caller already did.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

ArrayLike = Any  # np.ndarray | torch.Tensor | nested sequences


def _from_torch(x: Any) -> np.ndarray | None:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64).numpy()
    return None


def as_float64(x: ArrayLike, name: str, ndim: int | None = None) -> np.ndarray:
    """``x`` as a finite float64 array, with a clear error naming ``name`` otherwise."""
    arr = _from_torch(x)
    arr = np.asarray(x, dtype=np.float64) if arr is None else arr
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def as_labels(y: ArrayLike, name: str = "labels") -> np.ndarray:
    """``y`` as a 1-D int64 array of class indices."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(arr.shape)}")
    integral = arr.dtype.kind in "biu" or bool(np.all(arr == np.round(arr)))
    if arr.size and not integral:
        raise ValueError(f"{name} must be integer class indices")
    return arr.astype(np.int64)


def readonly(arr: np.ndarray) -> np.ndarray:
    """A read-only view, so arrays held by frozen results cannot be changed in place."""
    out = arr.view()
    out.setflags(write=False)
    return out
