"""On-disk cache of reference solutions (``.npz`` files, written atomically).

Location: ``$FASTPINN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fastpinn``, else
``~/.cache/fastpinn`` (resolved at each call, so changing the environment takes effect at once).

A file is named ``{name}-v{FORMAT_VERSION}-{hash}.npz`` where ``hash`` is a short SHA-256 of the
problem name, the format version and every parameter that affects the result. Besides the arrays
the file stores the full parameter JSON and a SHA-256 of the array contents; a file whose
metadata or checksum do not match, or that cannot be read at all, is recomputed and overwritten,
never trusted.

Also holds the small grid/validation helpers the reference modules share.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._io import atomic_save_npz

__all__ = ["FORMAT_VERSION", "cache_dir", "cache_path", "cached"]

#: Bump when the stored layout or the numerical method changes in a way the parameters do not show.
FORMAT_VERSION = 1

_META_PARAMS = "__fastpinn_params__"
_META_CHECKSUM = "__fastpinn_sha256__"


def cache_dir() -> Path:
    """The cache directory (not created here)."""
    env = os.environ.get("FASTPINN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "fastpinn"
    return Path.home() / ".cache" / "fastpinn"


def _plain(value: Any) -> Any:
    """JSON-able canonical form of a parameter value (numpy scalars/arrays, tuples -> Python)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cache parameters must be finite, got {value!r}")
        return value
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"cache parameter of type {type(value).__name__} is not supported")


def _params_json(name: str, params: Mapping[str, Any]) -> str:
    # float repr round-trips exactly, so equal parameters <=> equal JSON.
    return json.dumps(
        {"name": name, "format": FORMAT_VERSION, "params": _plain(params)}, sort_keys=True, separators=(",", ":")
    )


def cache_path(name: str, params: Mapping[str, Any]) -> Path:
    """Path of the cache file for ``name`` and ``params`` (which need not exist)."""
    if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
        raise ValueError(f"name must be a non-empty string of letters, digits, '-' or '_', got {name!r}")
    digest = hashlib.sha256(_params_json(name, params).encode()).hexdigest()[:16]
    return cache_dir() / f"{name}-v{FORMAT_VERSION}-{digest}.npz"


def _checksum(arrays: Mapping[str, NDArray[Any]]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype.str).encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _load(path: Path, expected_params: str) -> dict[str, NDArray[Any]] | None:
    """Arrays stored at ``path``, or ``None`` if absent, unreadable, stale or corrupted."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
        params = str(data.pop(_META_PARAMS))
        checksum = str(data.pop(_META_CHECKSUM))
    except Exception:  # any failure to read (truncated zip, bad header, missing keys, ...) means "recompute"
        return None
    if params != expected_params or checksum != _checksum(data):
        return None
    return data


def cached(
    name: str, params: Mapping[str, Any], compute: Callable[[], Mapping[str, NDArray[Any]]]
) -> dict[str, NDArray[Any]]:
    """Return ``compute()``'s arrays, from the cache file for ``(name, params)`` when it is valid.

    Args:
        name: problem name (letters, digits, ``-``, ``_``); first part of the file name.
        params: every parameter that affects the result (JSON-able scalars, lists, dicts).
        compute: builds the arrays; called only on a cache miss or an invalid file.

    Returns:
        dict of numpy arrays (fresh copies; mutating them does not touch the cache).

    A miss is written atomically; if writing fails (read-only disk, ...) a warning is issued and the
    computed result is returned anyway.
    """
    expected = _params_json(name, params)
    path = cache_path(name, params)
    data = _load(path, expected)
    if data is not None:
        return data
    result = {str(k): np.asarray(v) for k, v in compute().items()}
    bad = [k for k in result if k.startswith("__fastpinn_")]
    if bad:
        raise ValueError(f"compute() returned reserved array names {bad}")
    try:
        atomic_save_npz(
            path,
            **result,
            **{_META_PARAMS: np.array(expected), _META_CHECKSUM: np.array(_checksum(result))},
        )
    except OSError as exc:
        warnings.warn(f"fastpinn: could not write reference cache {path}: {exc}", RuntimeWarning, stacklevel=2)
    return result


# --- helpers shared by the reference modules -------------------------------------------------


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as int if it is an integer ``>= minimum``; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def tensor_grid(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows ``(a[i], b[j])`` in a-major order: float64 ``[len(a) * len(b), 2]``, row ``i * len(b) + j``."""
    A, B = np.meshgrid(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), indexing="ij")
    return np.stack([A.ravel(), B.ravel()], axis=1)
