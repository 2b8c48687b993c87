"""fastpinn.malloc: freed blocks are reused instead of being page-faulted in again (checked in a subprocess,
since the setting is process-wide)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from fastpinn.malloc import retain_freed_memory

# One "step" allocates 30 blocks of 2 MiB (60 MiB live, like a step's activations), touches every page and
# frees them all. glibc's defaults: the first step's blocks are mmapped; freeing them raises the mmap
# threshold to 2 MiB but the trim threshold only to 4 MiB, so every later step takes its blocks from the heap
# and every free of the heap top hands ~60 MiB back to the kernel: ~15,000 minor faults per step. With freed
# memory retained nothing is handed back after the first step, so later steps fault (almost) nothing.
PROBE = r"""
import ctypes, resource, sys
sys.path.insert(0, {root!r})
from fastpinn.malloc import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "on" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
n = 2 << 20
def step():
    blocks = [libc.malloc(n) for _ in range(30)]
    for p in blocks:
        ctypes.memset(p, 1, n)
    for p in reversed(blocks):
        libc.free(p)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _probe(mode: str, env_extra: dict[str, str] | None = None) -> tuple[bool, int]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "FASTPINN_MALLOC_TUNING"}
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=root), mode], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_retained_memory_stops_page_faults():
    applied, faults_on = _probe("on")
    _, faults_off = _probe("off")
    assert applied
    pages = 5 * 30 * (2 << 20) // 4096  # pages touched by the 5 measured steps
    assert faults_off > pages // 2  # the default: most pages are fresh every step
    assert faults_on < pages // 100  # retained: reused, a few faults of noise at most


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_opt_out_by_environment():
    applied, faults = _probe("on", {"FASTPINN_MALLOC_TUNING": "0"})
    assert not applied and faults > 5 * 30 * (2 << 20) // 4096 // 2


def test_bad_trim_threshold():
    with pytest.raises(ValueError, match="trim_threshold"):
        retain_freed_memory(-1)
