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

One kernel runs on a single thread whatever the count: the Trainer's fused Adam step below
:data:`fastpinn.optim.SERIAL_ADAM_ELEMENTS` parameters (waking the pool for a few thousand elements cost more
than the kernel; elementwise, so the floats are the same).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator, Optional, Union

import torch

__all__ = ["available_cores", "idle_cores", "threads_for_now", "use_threads", "ThreadSetting", "ThreadsEnvironmentError",
           "environment_threads", "oversubscription_warning", "MAX_THREADS"]

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
# Far above any core count we know of; a larger request is a typo (and torch's C int would overflow).
MAX_THREADS = 4096


class ThreadsEnvironmentError(ValueError):
    """``$FASTPINN_THREADS`` holds something other than ``auto`` or an integer in ``[1, MAX_THREADS]``: a fault
    of the environment, not of the arguments (the command line reports it with its environment exit code)."""


def environment_threads() -> Optional[int]:
    """The count ``$FASTPINN_THREADS`` fixes, or ``None`` where it is unset, empty or ``auto``.

    Raises:
        ThreadsEnvironmentError: for anything else, one line naming the variable and the allowed values.
    """
    env = os.environ.get(ENV, "").strip()
    if not env or env == "auto":
        return None
    digits = env.isascii() and env.isdigit()  # "²".isdigit() is True, int("²") fails
    if not digits or not 1 <= int(env) <= MAX_THREADS:
        bound = f" (at most {MAX_THREADS})" if digits and int(env) > MAX_THREADS else ""
        raise ThreadsEnvironmentError(f"{ENV} must be 'auto' or an integer >= 1{bound}, got {env!r}")
    return int(env)


def oversubscription_warning(count: int, source: str = "threads") -> Optional[str]:
    """One line warning that ``count`` threads exceed the cores this process may run on (each kernel then
    waits for descheduled threads: steps tens of times slower), or ``None`` when they fit."""
    cores = available_cores()
    if count <= cores:
        return None
    return (f"warning: {source} {count} exceeds the {cores} core{'s' if cores > 1 else ''} available to this "
            f"process; training will be much slower than with {cores} (omit it to use the idle cores)")


def resolve_threads(setting: ThreadSetting) -> Optional[int]:
    """``"auto"`` -> ``$FASTPINN_THREADS`` if set, else :func:`threads_for_now` (re-measured at most every
    ``CACHE_SECONDS``); an int in ``[1, MAX_THREADS]`` -> itself; ``None`` -> leave torch as it is.

    Raises:
        ThreadsEnvironmentError: ``$FASTPINN_THREADS`` is invalid (see :func:`environment_threads`).
        ValueError: for any other bad setting, naming it.
    """
    if setting is None:
        return None
    if setting == "auto":
        fixed = environment_threads()
        if fixed is not None:
            return fixed
        now = time.monotonic()
        cached = _CACHE.get("auto")
        if cached is None or now - cached[0] > CACHE_SECONDS:
            _CACHE["auto"] = cached = (now, threads_for_now())
        return cached[1]
    if isinstance(setting, bool) or not isinstance(setting, int) or not 1 <= setting <= MAX_THREADS:
        bound = f" (at most {MAX_THREADS})" if isinstance(setting, int) and setting > MAX_THREADS else ""
        raise ValueError(f"threads must be 'auto', None or an integer >= 1{bound}, got {setting!r}")
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
