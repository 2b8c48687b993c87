"""Guarded loader of the compiled extension ``fastpinn._C``.

Importing this module (or :mod:`fastpinn`) never fails because the extension is missing or stale: only the
first call of :func:`load` (or of an op through it) raises, with instructions to rebuild. Loading the
library registers ``torch.ops.fastpinn.{grad_stats, ema_update, mlp_jet_forward, mlp_jet_backward}`` with
the dispatcher, and their fake implementations (for ``torch.compile``) with :mod:`fastpinn.ops.fake`.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import threading
from types import ModuleType
from typing import Any

import torch

__all__ = ["load", "available", "build_info", "import_extension", "schema_digest", "REBUILD_HINT"]

REBUILD_HINT = (
    "Rebuild it from the repository root, against the torch installed now: "
    "`pip install setuptools wheel pybind11 cmake ninja` (torch must already be installed), then "
    "`pip install --no-build-isolation -e .` (or without -e for a regular install)."
)

_lock = threading.Lock()
_module: ModuleType | None = None
_error: RuntimeError | None = None


def _major_minor(version: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def import_extension() -> ModuleType:
    """Import ``fastpinn._C`` and check the torch it was built against, uncached (:func:`load` caches the
    result and registers the fakes). Raises RuntimeError like :func:`load`."""
    try:
        mod = importlib.import_module("fastpinn._C")
    except Exception as exc:  # ImportError, or an OSError/undefined symbol from a stale build
        raise RuntimeError(
            "The fastpinn C++ extension (fastpinn._C) could not be loaded. An undefined-symbol error usually "
            f"means it was built against another torch version. {REBUILD_HINT}\n"
            f"Original error: {type(exc).__name__}: {exc}"
        ) from exc
    info = mod.build_info() if hasattr(mod, "build_info") else {}
    built = str(info.get("torch_version", "unknown"))
    if _major_minor(built) != _major_minor(torch.__version__):
        raise RuntimeError(
            f"The fastpinn C++ extension was built against torch {built}, but torch {torch.__version__} is "
            f"installed; the C++ ABI differs between torch releases. {REBUILD_HINT}"
        )
    return mod


def load() -> ModuleType:
    """Import ``fastpinn._C`` once (cached) and register the fake implementations; return the module.

    Raises:
        RuntimeError: the extension is missing, fails to load, or was built against another torch
            (major.minor); the message says how to rebuild and includes the original error.
    """
    global _module, _error
    if _module is not None:
        return _module
    with _lock:
        if _module is None:
            if _error is not None:  # do not retry a failed import on every call
                raise RuntimeError(str(_error)) from _error.__cause__
            try:
                mod = import_extension()
            except RuntimeError as exc:
                _error = exc
                raise
            from . import fake

            fake.register_fakes()
            _tag_compile_caches()
            _module = mod
    return _module


def schema_digest() -> str:
    """A digest of the schemas of the compiled library's ops (``fastpinn::*`` with a C++ CPU kernel; the
    Triton ops registered from Python have none), e.g. ``"3f0c2a91d4e5b6c7"``."""
    names = sorted(n for n in torch._C._dispatch_get_all_op_names()
                   if n.startswith("fastpinn::") and torch._C._dispatch_has_kernel_for_dispatch_key(n, "CPU"))
    schemas = "\n".join(str(torch._C._get_schema(n, "")) for n in names)
    return hashlib.sha256(schemas.encode()).hexdigest()[:16]


def _tag_compile_caches() -> None:
    """Add the ops' :func:`schema_digest` to ``torch.compiler.config.cache_key_tag``, a part of the keys of
    torch.compile's on-disk caches (Inductor's FX graph cache, the AOTAutograd cache). Those keys hash a graph's
    nodes but not the schemas of the custom ops it calls, while the code they store spells out the ops' default
    arguments: after a rebuild that changed a schema (``activation`` int -> str), a graph compiled against the old
    library was replayed against the new one and failed ("Expected a value of type 'str' for argument
    'activation'")."""
    tag = f"fastpinn-ops-{schema_digest()}"
    current = torch.compiler.config.cache_key_tag
    if tag not in current:
        torch.compiler.config.cache_key_tag = f"{current}+{tag}" if current else tag


def available() -> bool:
    """Whether the compiled extension can be loaded (never raises)."""
    try:
        load()
    except RuntimeError:
        return False
    return True


def build_info() -> dict[str, Any]:
    """Build configuration of the loaded extension, e.g. ``{"cuda": False, "torch_version": "2.13.0",
    "compiler": "GNU 12.2.0", ...}``. Raises RuntimeError like :func:`load`."""
    return dict(load().build_info())
