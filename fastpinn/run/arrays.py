"""Arrays in and out of the command line: points and values from ``.npy``/``.csv``, predictions written back."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from .. import _io

__all__ = ["read_points", "write_array"]


def read_points(path: Union[str, Path], d: int, name: str = "points") -> np.ndarray:
    """Points ``[M, d]`` (or values) from ``.npy`` or ``.csv`` (comma-separated; a first row of names is a header,
    a first row of numbers is data; a UTF-8 byte-order mark is ignored: see :func:`fastpinn._io.read_csv`)."""
    p = Path(path)
    if p.suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError:  # numpy's message for a text file is "contains pickled (object) data"
            raise ValueError(f"{name} file {str(p)!r} is not a .npy array of numbers") from None
    elif p.suffix == ".csv":
        arr = _io.read_csv(p, name)
    else:
        raise ValueError(f"{name} file must end in .npy or .csv, got {str(p)!r}")
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":  # a complex, text or record .npy would be cast with a loss or fail
        raise ValueError(f"{name} in {str(p)!r} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 1 and name == "points":
        arr = arr.reshape(-1, 1) if d == 1 else arr
    if d and (arr.ndim != 2 or arr.shape[1] != d):
        raise ValueError(f"{name} in {str(p)!r} must have shape [M, {d}], got {list(arr.shape)}")
    if arr.size == 0:
        raise ValueError(f"{name} in {str(p)!r} hold no numbers (shape {list(arr.shape)})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} in {str(p)!r} hold NaN or Inf")
    return arr


def write_array(path: Union[str, Path], arr: np.ndarray, header: Sequence[str]) -> None:
    """Write ``arr`` (``[M, c]``) atomically as ``.npy`` or ``.csv`` (with ``header``)."""
    p = Path(path)
    if p.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, arr)
        _io.atomic_write_bytes(p, buf.getvalue())
    elif p.suffix == ".csv":
        if arr.ndim != 2:
            raise ValueError(f"a .csv output holds a table [M, columns]; this prediction has shape {list(arr.shape)} "
                             "(an ensemble: pick --member, or write .npy)")
        text = io.StringIO()
        np.savetxt(text, arr, delimiter=",", header=",".join(header), comments="")
        _io.atomic_write_text(p, text.getvalue())
    else:
        raise ValueError(f"output file must end in .npy or .csv, got {str(p)!r}")
