"""How many CPU threads torch should use for training: fast on an idle machine, no collapse on a busy one.

The paper's networks are small (20-128 wide): one step is hundreds of short matrix products and
element-wise kernels. With more OpenMP threads than free cores, every one of those kernels waits for
a descheduled thread, and a step runs tens of times slower (24-64x measured on a loaded 2-core CPU).
With as many threads as *free* cores, a second thread speeds a step up (see
``bench/results/*threads*``). So the policy is: measure how busy the CPUs are right now (``/proc/stat``
over a short window, Linux) and use the number of idle cores, at least one, at most the cores this
process may run on.

:func:`threads_for_now` computes it; :class:`Trainer` applies it for the duration of ``train()`` when
``threads="auto"`` (its default, restoring the previous setting afterwards), and the command line sets
it once at start. Results are reproducible for a given thread count; a different count can change
the order of floating-point reductions (rounding-level differences), so the count used is recorded.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator, Optional, Union

import torch

__all__ = ["available_cores", "idle_cores", "threads_for_now", "use_threads", "ThreadSetting"]

ThreadSetting = Union[int, str, None]
PROBE_SECONDS = 0.2  # long enough to average over scheduler ticks, short beside any training run


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> Optional[tuple[int, int]]:
    """``(idle, total)`` jiffies over all CPUs from ``/proc/stat`` (None off Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return idle, sum(values[:8])


def idle_cores(seconds: float = PROBE_SECONDS) -> Optional[float]:
    """How many of the machine's cores were idle over the next ``seconds`` (None where unmeasurable)."""
    a = _cpu_times()
    if a is None:
        return None
    time.sleep(seconds)
    b = _cpu_times()
    if b is None or b[1] <= a[1]:
        return None
    fraction = (b[0] - a[0]) / (b[1] - a[1])
    return fraction * (os.cpu_count() or 1)


def threads_for_now(seconds: float = PROBE_SECONDS) -> int:
    """The thread count of the policy: the idle cores now (rounded), between 1 and :func:`available_cores`.
    Where the load cannot be measured: one thread (never collapses)."""
    cores = available_cores()
    idle = idle_cores(seconds)
    if idle is None:
        return 1
    return max(1, min(cores, int(idle + 0.5)))


_CACHE: dict[str, tuple[float, int]] = {}
CACHE_SECONDS = 30.0  # re-measure at most this often (a train() call costs no probe in a tight loop)
ENV = "FASTPINN_THREADS"  # overrides "auto": an integer >= 1 (e.g. 1 for bit-reproducible test suites)


def resolve_threads(setting: ThreadSetting) -> Optional[int]:
    """``"auto"`` -> ``$FASTPINN_THREADS`` if set, else :func:`threads_for_now` (re-measured at most every
    ``CACHE_SECONDS``); an int ``>= 1`` -> itself; ``None`` -> leave torch as it is.

    Raises:
        ValueError: for anything else, naming the setting (or the environment variable).
    """
    if setting is None:
        return None
    if setting == "auto":
        env = os.environ.get(ENV, "").strip()
        if env and env != "auto":
            if not env.isdigit() or int(env) < 1:
                raise ValueError(f"{ENV} must be 'auto' or an integer >= 1, got {env!r}")
            return int(env)
        now = time.monotonic()
        cached = _CACHE.get("auto")
        if cached is None or now - cached[0] > CACHE_SECONDS:
            _CACHE["auto"] = cached = (now, threads_for_now())
        return cached[1]
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"threads must be 'auto', None or an integer >= 1, got {setting!r}")
    return setting


@contextlib.contextmanager
def use_threads(setting: ThreadSetting) -> Iterator[int]:
    """Run the block with torch's intra-op thread count set by ``setting`` (see :func:`resolve_threads`),
    then restore it. Yields the count in effect."""
    wanted = resolve_threads(setting)
    before = torch.get_num_threads()
    if wanted is not None and wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield torch.get_num_threads()
    finally:
        if wanted is not None and wanted != before:
            torch.set_num_threads(before)
