"""How much memory fmlab lets one run ask for, checked before the big allocations.

A config can ask for far more than a machine has (``task.vocab_size=10**12``,
``model.n_layers=100000``): without a check, the allocator refuses with a traceback — or,
worse, the request fits in swap and the machine stalls. Constructors of large objects
(fmlab's GPT, task data) estimate their bytes first and call :func:`check_memory`, which
refuses what exceeds the budget with a message that states the limit and how to change
it. The budget is ``FMLAB_MEMORY_LIMIT`` (``64G``, ``512M`` or bytes) if set, else 80 % of
this machine's physical memory.
"""

from __future__ import annotations

import os
import re

from fmlab.errors import UserInputError

ENV = "FMLAB_MEMORY_LIMIT"
UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class ResourceLimitError(UserInputError):
    """A request for more memory than this machine allows fmlab to use."""


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a laptop
        return 16 * 2**30


def memory_budget() -> int:
    """Bytes one run may allocate: ``FMLAB_MEMORY_LIMIT``, else 80 % of physical memory."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return int(0.8 * physical_memory())
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, flags=re.IGNORECASE)
    if match is None:
        raise UserInputError(f"{ENV}={text!r}: give bytes or a size such as 512M, 64G")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def check_memory(what: str, n_bytes: float) -> None:
    """Refuse ``what`` if it needs more than the budget (one clear line, with the fix)."""
    budget = memory_budget()
    if n_bytes > budget:
        source = f"{ENV}" if os.environ.get(ENV, "").strip() else "80 % of this machine's memory"
        raise ResourceLimitError(
            f"{what} would need about {human(n_bytes)}, more than the {human(budget)} fmlab "
            f"allows here ({source}); reduce it, or set {ENV} (e.g. {ENV}=64G) to try anyway"
        )
