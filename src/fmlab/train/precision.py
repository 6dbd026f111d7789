"""Mixed precision for the training loops: ``train.precision = fp32 | bf16 | fp16``.

``fp32`` (the default) changes nothing — the arithmetic is exactly what it was, so CPU
results stay bit-identical. ``bf16`` and ``fp16`` autocast the forward pass and the loss
(``torch.autocast``, on the model's device type: CUDA, or the CPU's bf16 kernels); fp16
also scales the loss (a ``GradScaler``) so small gradients do not underflow. ``tf32``
lets CUDA matmuls use TensorFloat-32 (it has no effect on a CPU).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, cfg: Any, device: torch.device):
        self.dtype = DTYPES.get(cfg.precision)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = bool(cfg.tf32)
            torch.backends.cudnn.allow_tf32 = bool(cfg.tf32)

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Before clipping: gradients in their true scale."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)  # skipped when the scaled gradients overflowed
            self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state is not None:
            self.scaler.load_state_dict(state)
