"""What a result was measured on: recorded in every summary."""

from __future__ import annotations

import platform
import sys

import torch

from fmlab.version import __version__


def env_info(device: torch.device | str | None = None) -> dict[str, object]:
    device = torch.device(device or "cpu")
    info: dict[str, object] = {
        "fmlab": __version__,
        "torch": torch.__version__.split("+")[0],
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        info["device_name"] = torch.cuda.get_device_name(index)
        info["cuda"] = torch.version.cuda
    return info
