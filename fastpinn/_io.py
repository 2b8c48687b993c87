"""Atomic file writing, strict JSON, and reading numeric CSV tables.

Every writer here creates a temporary file in the destination's directory (same filesystem, so the
final rename is atomic), writes and fsyncs it, then ``os.replace``-s it over the destination. A
reader therefore sees either the old complete file or the new complete file, never a partial one,
even if the process is killed mid-write. On any error the temporary file is removed and the old
file, if any, is left untouched.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_save_npz", "atomic_open",
           "remove_stray_temporaries", "plain_json", "json_text", "read_csv"]

PathLike = str | os.PathLike[str]


def _default_mode() -> int:
    # mkstemp creates files 0600; a normal open() would give 0666 & ~umask. umask can only be read
    # by setting it, so do that once at import (before any threads of ours exist).
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_NEW_FILE_MODE = _default_mode()
TMP_SUFFIX = ".tmp"  # temporaries are ".<name>.<random>.tmp" beside their destination


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); best effort, some filesystems refuse directory fsync."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: PathLike) -> Iterator[IO[bytes]]:
    """Context manager yielding a binary file that replaces ``path`` atomically on success.

    Parent directories are created. If the body raises, the temporary file is deleted and
    ``path`` keeps its previous content (or stays absent). The new file gets the old file's
    permission bits if it existed, else the usual ``0666 & ~umask``.
    """
    dest = Path(path)
    directory = dest.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(os.stat(dest).st_mode)
        except FileNotFoundError:
            mode = _NEW_FILE_MODE
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{dest.name}.", suffix=TMP_SUFFIX)
    except FileExistsError:  # mkdir met a file where a parent directory should be: say that, not "File exists"
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(dest)) from None
    except OSError as exc:
        raise _naming(exc, dest) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException as exc:
        # BaseException too: a KeyboardInterrupt mid-write must not leave a stray temp file.
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise _naming(exc, dest) from None
        raise
    _fsync_dir(directory)


def _naming(exc: OSError, dest: Path) -> OSError:
    """The same error (same type and errno), naming the file the caller asked for, not our temporary."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(dest))


def remove_stray_temporaries(directory: PathLike) -> list[Path]:
    """Delete the temporary files that an :func:`atomic_open` killed mid-write (``kill -9``, power loss)
    left in ``directory``; returns what was removed."""
    removed = []
    d = Path(directory)
    if not d.is_dir():
        return removed
    for p in d.glob(f".*{TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see module docstring)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    with atomic_open(path) as fh:
        fh.write(data)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically, encoded with ``encoding`` (no newline translation)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    atomic_write_bytes(path, text.encode(encoding))


def plain_json(obj: Any) -> Any:
    """``obj`` in plain JSON types: numpy scalars and arrays as Python numbers and lists, paths as strings,
    tuples as lists, and non-finite floats (NaN, +-Inf) as ``None`` -- standard JSON has no spelling for them,
    and Python's default ``NaN``/``Infinity`` tokens break other readers."""
    if isinstance(obj, dict):
        return {str(k): plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain_json(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def json_text(obj: Any, indent: int | None = None) -> str:
    """``obj`` as standard JSON text (:func:`plain_json` first; anything still not JSON raises)."""
    return json.dumps(plain_json(obj), indent=indent, allow_nan=False)


def atomic_write_json(path: PathLike, obj: Any, indent: int | None = 2) -> None:
    """Serialise ``obj`` as standard JSON (:func:`json_text`: NaN/Inf as ``null``) plus a trailing newline and
    write it to ``path`` atomically.

    Serialisation happens before the file is touched, so an unserialisable ``obj`` raises
    ``TypeError``/``ValueError`` and leaves ``path`` as it was.
    """
    text = json_text(obj, indent=indent) + "\n"
    atomic_write_text(path, text)


def atomic_save_npz(path: PathLike, **arrays: Any) -> None:
    """Save ``arrays`` as an uncompressed ``.npz`` at exactly ``path`` (no suffix is appended), atomically.

    Arrays are streamed into the temporary file, so memory use does not double.
    """
    with atomic_open(path) as fh:
        np.savez(fh, **arrays)


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def read_csv(path: PathLike, name: str = "table") -> np.ndarray:
    """A comma-separated table of numbers as a float64 array ``[rows, columns]``.

    The first row may be a header of names (no field a number), which is skipped; a first row of numbers is
    data. A UTF-8 byte-order mark (Excel writes one) is ignored, as are blank lines and lines starting with
    ``#``. Raises ``ValueError`` naming ``name``, the file and the line for a header mixing names and numbers,
    a field that is not a number, rows of different widths, or a file with no data rows.
    """
    where = f"{name} file {os.fspath(path)!r}"
    with open(path, encoding="utf-8-sig", newline="") as fh:  # utf-8-sig: strips the BOM if there is one
        try:
            lines = [(i, row) for i, row in enumerate(csv.reader(fh), start=1)
                     if row and "".join(row).strip() and not row[0].lstrip().startswith("#")]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{where} is not a UTF-8 CSV text file ({exc})") from None
    if lines:
        first_line, first = lines[0]
        numeric = [_is_number(f) for f in first]
        if not any(numeric):
            lines = lines[1:]  # a header row of names
        elif not all(numeric):
            raise ValueError(f"{where}: line {first_line} mixes names and numbers ({','.join(first)!r}): the first "
                             "row must be all names (a header) or all numbers (data)")
    if not lines:
        raise ValueError(f"{where} holds no rows of numbers")
    width = len(lines[0][1])
    rows = []
    for i, row in lines:
        if len(row) != width:
            raise ValueError(f"{where}: line {i} has {len(row)} columns, the first data row {width}")
        try:
            rows.append([float(f) for f in row])
        except ValueError:
            raise ValueError(f"{where}: line {i} holds a field that is not a number ({','.join(row)!r})") from None
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
