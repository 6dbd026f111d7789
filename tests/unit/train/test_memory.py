import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import resource, torch
    from fmlab.train.memory import keep_freed_memory

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            torch.empty(64 << 18).fill_(1.0)  # 64 MiB, touched, then freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults()  # warm-up
    without = faults()
    applied = keep_freed_memory()
    print(without, faults(), applied, keep_freed_memory())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    # a fresh process: the setting is process-wide and cannot be undone
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    without, with_, applied, again = out.stdout.split()
    assert applied == "True" and again == "True"  # idempotent
    pages = 64 << 20 >> 12  # 4 KiB pages in one 64 MiB buffer
    assert int(without) >= 15 * pages  # every buffer faulted in afresh: ~20 × 16,384
    assert int(with_) <= 2 * pages  # reused: at most one buffer's worth (+ noise)
