"""Process-wide speed settings that the config switches on (measured in docs/performance.md)."""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 256 * 2**20


def keep_freed_memory() -> bool:
    """Make glibc keep freed tensor memory in the process instead of handing it back to the OS.

    By default glibc serves large blocks with fresh mappings and returns them when freed, and a
    training step frees and reallocates the same large tensors (gradients, optimizer temporaries)
    every time: each 4 KB page of them page-faults again on every step (1,500-2,000 faults per
    text-CNN step on a CPU). Serving blocks of up to 32 MB from the heap and trimming it only
    above 256 MB of free memory removes the faults. Returns whether it applied (glibc only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
