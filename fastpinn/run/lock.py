"""One writer per run directory: an exclusive ``flock`` on ``<run dir>/.fastpinn.lock``.

The operating system releases a ``flock`` when its process dies (``kill -9`` included), so a lock left by
a dead process never blocks: the next run finds the file unlocked, says in one line that it takes over
the lock the dead process left (its pid, host and start time are recorded in the file) and goes on. A
live holder makes :class:`RunDirBusyError` (the command line's exit status 5), naming its pid.

Only the process that writes the directory locks it (rank 0 of a ``torchrun`` job).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Optional, Union

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking (documented)
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "RunDirBusyError", "RunDirLock", "check_not_busy"]

#: The lock file's name inside a run directory (not part of the run: emptiness checks ignore it).
LOCK_FILE = ".fastpinn.lock"
_HELD: set[Path] = set()  # lock files this process holds (its own lock is not "another process")


class RunDirBusyError(RuntimeError):
    """Another live process holds the run directory's lock (``holder``: what it recorded, e.g. its pid)."""

    def __init__(self, run_dir: Path, holder: dict) -> None:
        who = f"pid {holder.get('pid', '?')}"
        if holder.get("host"):
            who += f" on {holder['host']}"
        if holder.get("started"):
            who += f", started {holder['started']}"
        super().__init__(f"output directory {str(run_dir)!r} is in use by another fastpinn process ({who}); wait "
                         "for it to finish, or choose another --out")
        self.run_dir, self.holder = run_dir, holder


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace")
        holder = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {"pid": "?"}
    return holder if isinstance(holder, dict) else {"pid": "?"}


def _try_flock(fd: int, how: int, *, patience: float = 0.2) -> bool:
    """Whether ``flock(fd, how)`` succeeds within ``patience`` seconds (a probe of :func:`check_not_busy`
    holds the lock for microseconds; a writer holds it for the whole run)."""
    end = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)


class RunDirLock:
    """The exclusive lock of ``run_dir`` while this process writes it (a context manager).

    :meth:`acquire` creates the directory if needed; :meth:`release` removes the lock file.
    """

    def __init__(self, run_dir: Union[str, os.PathLike], *, log: Optional[Callable[[str], None]] = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.log = log or (lambda s: None)
        self._fd: Optional[int] = None

    def acquire(self) -> "RunDirLock":
        """Take the lock; :class:`RunDirBusyError` if a live process holds it."""
        if fcntl is None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_flock(fd, fcntl.LOCK_EX):
                holder = _read_holder(fd)
                os.close(fd)
                raise RunDirBusyError(self.run_dir, holder)
            # The holder before us may have removed the file between our open and our flock: then we
            # hold a lock on a file nobody else sees; open the current one again.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        left = _read_holder(fd)
        if left:
            self.log(f"{self.run_dir}: taking over the lock left by pid {left.get('pid', '?')}"
                     f"{' on ' + str(left['host']) if left.get('host') else ''}, which is no longer running")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, record)
        self._fd = fd
        _HELD.add(self.path.resolve())
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding the lock, so no one else locks a file being removed)."""
        if self._fd is None:
            return
        _HELD.discard(self.path.resolve())
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self._fd)  # closing releases the flock
        self._fd = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_not_busy(run_dir: Union[str, os.PathLike]) -> None:
    """:class:`RunDirBusyError` if a live process holds ``run_dir``'s lock (nothing is created or taken)."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file() or path.resolve() in _HELD:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        if not _try_flock(fd, fcntl.LOCK_SH, patience=0.0):
            raise RunDirBusyError(Path(run_dir), _read_holder(fd))
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
