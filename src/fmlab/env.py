"""What a result was measured on: recorded in every summary."""

from __future__ import annotations

import platform
import sys

import torch

from fmlab.version import __version__


def env_info(device: str = "cpu") -> dict[str, object]:
    return {
        "fmlab": __version__,
        "torch": torch.__version__.split("+")[0],
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "device": device,
        "threads": torch.get_num_threads(),
    }
