"""Keep freed CPU memory in the process instead of handing it back to the kernel (glibc only).

A PINN step on the CPU allocates and frees the same few-megabyte activation tensors every step. glibc
serves blocks above its mmap threshold with fresh ``mmap`` pages and returns them on ``free``, and trims
the heap top whenever it is free, so each step pays thousands of page faults in which the kernel zeroes
memory the step is about to overwrite: on the paper's Burgers setup, thousands of minor faults and
10-20 ms of system time per epoch (``bench/bench_allocator.py`` measures it side by side; on a 2-core
EPYC with one thread the defaults were 1.18x slower per epoch).

:func:`retain_freed_memory` raises the mmap threshold to glibc's maximum and the trim threshold to
``trim_threshold`` so freed blocks are reused from the heap. It changes the whole process's allocator, so
the library never calls it on import: the ``fastpinn`` command line and the benchmarks do (opt out with
``FASTPINN_MALLOC_TUNING=0``), and a script can call it once at start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["retain_freed_memory", "ENV_VAR"]

ENV_VAR = "FASTPINN_MALLOC_TUNING"

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc caps M_MMAP_THRESHOLD at HEAP_MAX_SIZE / 2: 32 MiB on 64-bit.
_MAX_MMAP_THRESHOLD = 32 * 1024 * 1024


def retain_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Make glibc reuse freed blocks up to 32 MiB and keep up to ``trim_threshold`` bytes of free heap.

    Returns ``True`` when the settings were applied; ``False`` (and nothing changes) off glibc, or when
    ``FASTPINN_MALLOC_TUNING=0``. Blocks above 32 MiB still come from ``mmap`` and go back on ``free``.
    """
    if isinstance(trim_threshold, bool) or not isinstance(trim_threshold, int) or trim_threshold < 0:
        raise ValueError(f"trim_threshold must be an integer >= 0 (bytes), got {trim_threshold!r}")
    if os.environ.get(ENV_VAR, "1").strip() in ("0", "off", "false", "no"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt takes an int: clamp the trim threshold to INT_MAX.
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, _MAX_MMAP_THRESHOLD) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1)) == 1
    return ok_mmap and ok_trim
