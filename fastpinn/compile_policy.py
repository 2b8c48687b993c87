"""When to ``torch.compile`` a trainer's term losses, and how a loss function gets its own compiled graphs.

``compile="auto"`` trains a few eager epochs, then compiles only if the remaining epochs would save more
than a cold compilation costs; a compiler failure falls back to the (correct) eager path with a warning.
In detail: a Trainer trains the first ``AUTO_COMPILE_PROBE_EPOCHS`` epochs of each ``train`` call eagerly,
then compiles only if the remaining epochs, at the measured eager rate and the smallest measured compiled
speed-up (``AUTO_COMPILE_MIN_SPEEDUP``), would save more than a cold compilation costs
(``AUTO_COMPILE_WARMUP_SECONDS``) (:func:`decide_compile`).
"""

from __future__ import annotations

import functools
import itertools
import time
import types
import warnings
from typing import Any, Callable, Optional

import torch

__all__ = ["AUTO_COMPILE_PROBE_EPOCHS", "AUTO_COMPILE_MIN_SPEEDUP", "AUTO_COMPILE_WARMUP_SECONDS",
           "decide_compile", "compile_or_fall_back", "compiled_copy", "outside_compiled_graphs"]

# compile="auto": eager epochs timed before deciding; the smallest compiled speed-up measured on the paper's
# problems (CPU, bench/results: 1.2-1.6x); a cold torch.compile of a problem's terms (40-60 s measured on a
# 2-core CPU, rounded up). Compiling pays when the remaining epochs save more than the warm-up costs.
AUTO_COMPILE_PROBE_EPOCHS = 20
AUTO_COMPILE_MIN_SPEEDUP = 1.2
AUTO_COMPILE_WARMUP_SECONDS = 60.0

_COMPILED_IDS = itertools.count()
_DISABLED: dict[Callable[..., Any], Callable[..., Any]] = {}


def decide_compile(probe_epochs: int, probe_seconds: float, remaining: int) -> dict[str, Any]:
    """What ``compile="auto"`` measured and decided (``"compiled"``: whether to compile now) after
    ``probe_epochs`` eager epochs took ``probe_seconds``, with ``remaining`` epochs to go."""
    ms = 1e3 * probe_seconds / probe_epochs
    saving = remaining * probe_seconds / probe_epochs * (1.0 - 1.0 / AUTO_COMPILE_MIN_SPEEDUP)
    return {"probe_epochs": probe_epochs, "eager_ms_per_epoch": ms, "remaining_epochs": remaining,
            "expected_saving_seconds": saving, "assumed_warmup_seconds": AUTO_COMPILE_WARMUP_SECONDS,
            "assumed_speedup": AUTO_COMPILE_MIN_SPEEDUP, "compiled": saving > AUTO_COMPILE_WARMUP_SECONDS}


def compile_or_fall_back(compile_now: Callable[[], float], go_eager: Callable[[], None]) -> tuple[float, Optional[str]]:
    """``compile_now()`` (returns its seconds); if it raises (e.g. no C++ compiler for inductor), warn,
    ``go_eager()`` and go on -- "auto" promises speed, not compilation. Returns ``(seconds, failure or None)``."""
    tick = time.perf_counter()
    try:
        return compile_now(), None
    except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager path is still correct
        go_eager()
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        warnings.warn(f"compile='auto': torch.compile failed ({reason}); training continues eagerly",
                      RuntimeWarning, stacklevel=4)
        return time.perf_counter() - tick, reason


def compiled_copy(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``torch.compile`` of a copy of ``fn`` with its own code object named ``name``.

    torch.compile keeps its graphs on the function's code object, at most a few per object: with one
    shared code object, a sweep that builds many trainers would silently fall back to eager once that
    limit is hit. A fresh code object per (trainer, term) gives each its own cache."""
    code = fn.__code__.replace(co_name=f"{name}_{next(_COMPILED_IDS)}")
    fresh = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
    return torch.compile(fresh, dynamic=False)


def outside_compiled_graphs(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run outside any ``torch.compile`` graph, like ``@torch.compiler.disable``, without importing
    ``torch._dynamo`` (~2.3 s on a 2-core CPU) when the decorated module is imported: every ``fastpinn``
    command would pay it. Eager calls run ``fn`` itself; a call traced by torch.compile (``is_compiling()``,
    a plain flag) makes the disabled function then, when dynamo is loaded anyway, and dynamo breaks the
    graph there as at any disabled call."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not torch.compiler.is_compiling():
            return fn(*args, **kwargs)
        disabled = _DISABLED.get(fn)
        if disabled is None:
            disabled = _DISABLED[fn] = torch.compiler.disable(fn)
        return disabled(*args, **kwargs)
    return call
