"""Run directories: where a training run's files live and how they are read and written.

One run directory holds::

    config.json      everything needed to rerun (problem, scheme, seeds, sizes, device, versions)
    metrics.json     final relative L2 per seed, mean and standard error, timings
    history.npz      the :class:`~fastpinn.trainer.History` (losses, weights, rel. L2 over epochs)
    checkpoint.pt    :meth:`~fastpinn.trainer.Trainer.save_checkpoint`: written every few minutes of training
                     (``--checkpoint-every``), on SIGTERM/SIGINT, at the last finite state of a diverged run
                     and at the end; it also holds the run's identity and its history so far (resume)
    *.png            figures (see :mod:`fastpinn.plots`)

Every file is written atomically (:mod:`fastpinn._io`): a reader sees a complete old file or a complete
new one, so an interrupted run never leaves a half-written ``metrics.json`` that a resumed sweep would
mistake for a finished configuration.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from . import _io

__all__ = [
    "CONFIG", "METRICS", "HISTORY", "CHECKPOINT", "RUN_FILES",
    "RunDirError", "RunPathError", "default_run_dir", "prepare_run_dir", "is_nonempty_dir", "check_dir_path",
    "replace_previous_run", "verify_run", "checkpoint_problem",
    "write_json", "read_json", "json_status", "read_config", "read_metrics",
    "mean_sem", "metrics_from_history", "environment", "device_name",
]

CONFIG = "config.json"
METRICS = "metrics.json"
HISTORY = "history.npz"
CHECKPOINT = "checkpoint.pt"
#: Files a run writes besides its figures (``*.png``).
RUN_FILES = (CONFIG, METRICS, HISTORY, CHECKPOINT)

PathLike = Union[str, os.PathLike]


class RunDirError(ValueError):
    """The output directory cannot be used for this run (it holds other files or another configuration)."""


class RunPathError(NotADirectoryError):
    """The output path is not a usable directory (it is a file); an ``OSError``, like the other filesystem
    faults (read-only, disk full), which the command line reports with their own exit status."""


def default_run_dir(problem: str, scheme: str, root: PathLike = "runs", *, now: Optional[float] = None) -> Path:
    """``<root>/<problem>-<scheme>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``, ... appended if taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    base = Path(root) / f"{problem}-{scheme}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def is_nonempty_dir(path: PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and any(p.iterdir())


def check_dir_path(path: PathLike) -> Path:
    """``path`` as a ``Path``; :class:`RunPathError` if it (or a parent) exists and is not a directory."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                raise RunPathError(errno.ENOTDIR, "exists and is not a directory", str(q))
            break
    return p


def prepare_run_dir(path: PathLike, *, force: bool = False) -> Path:
    """Create ``path`` for a run and check that files can be written in it.

    Raises :class:`RunPathError` if ``path`` is a file, :class:`RunDirError` if it is a non-empty directory
    and ``force`` is false, and the ``OSError`` of a failed write (read-only filesystem, permissions, disk
    full) naming the path. Nothing is deleted here: with ``force`` an earlier run's files stay until the new
    run replaces them (:func:`replace_previous_run`), so an interrupted ``--force`` loses nothing.
    """
    p = check_dir_path(path)
    if is_nonempty_dir(p) and not force:
        raise RunDirError(f"output directory {str(p)!r} is not empty; pass --force to overwrite it")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(p)) from None
    _io.remove_stray_temporaries(p)
    # Fail now, not after hours of training: write (atomically) and remove a probe file.
    probe = p / ".fastpinn-write-test"
    _io.atomic_write_bytes(probe, b"")
    probe.unlink()
    return p


def replace_previous_run(path: PathLike, keep: Iterable[str] = ()) -> None:
    """Remove what an earlier run left in ``path`` that the new one has not rewritten yet (its metrics,
    figures, ...), once the new run has written its own checkpoint; ``keep``: names already rewritten."""
    p = Path(path)
    keep = set(keep)
    for name in RUN_FILES:
        if name not in keep:
            (p / name).unlink(missing_ok=True)
    for png in p.glob("*.png"):
        png.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ verification
def verify_run(run_dir: PathLike, identity: dict) -> Optional[str]:
    """Why the finished run in ``run_dir`` cannot be reused for a configuration of ``identity``, or
    ``None`` if every file checks out: ``config.json`` (valid, same identity), ``metrics.json`` (valid,
    finished), ``history.npz`` (loadable, as many epochs as the run reached) and ``checkpoint.pt``
    (loadable, at that epoch, written by this configuration)."""
    d = Path(run_dir)
    status = json_status(d / CONFIG)
    if status != "ok":
        return f"{CONFIG} is {status}"
    config = read_config(d) or {}
    if config.get("identity") != identity:
        return f"{CONFIG} describes a different configuration"
    status = json_status(d / METRICS)
    if status != "ok":
        return f"{METRICS} is {status}"
    metrics = read_metrics(d) or {}
    reached = identity.get("epochs")
    if metrics.get("status") == "diverged":
        reached = metrics.get("last_good_epoch")
    elif metrics.get("early_stopped"):  # patience ended it before its length
        reached = metrics.get("epochs")
    try:
        from .trainer import History

        epochs = History.load(str(d / HISTORY)).epochs
    except FileNotFoundError:
        return f"{HISTORY} is missing"
    except Exception as exc:  # noqa: BLE001 - any failure to read it means the file is damaged
        return f"{HISTORY} is corrupt ({type(exc).__name__})"
    if reached is not None and epochs != reached:
        return f"{HISTORY} holds {epochs} epochs, the run reached {reached}"
    reason = checkpoint_problem(d / CHECKPOINT, identity, reached)
    return None if reason is None else reason


def checkpoint_problem(path: PathLike, identity: dict, epoch: Optional[int] = None) -> Optional[str]:
    """Why ``path`` is not a checkpoint of a run of ``identity`` (at ``epoch``), or ``None``."""
    from .trainer import CheckpointError, Trainer

    try:
        state = Trainer.read_checkpoint(str(path))
    except FileNotFoundError:
        return f"{Path(path).name} is missing"
    except CheckpointError:
        return f"{Path(path).name} is truncated or corrupt"
    extra = state.get("extra") or {}
    if extra.get("identity") != identity:
        return f"{Path(path).name} was written by a different configuration"
    if epoch is not None and state.get("epoch") != epoch:
        return f"{Path(path).name} is at epoch {state.get('epoch')}, the run reached {epoch}"
    return None


# ------------------------------------------------------------------------------------------ JSON
def _jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, non-finite floats to ``None`` (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as strict JSON (NaN/Inf become ``null``), atomically."""
    _io.atomic_write_json(path, _jsonable(obj))


def json_status(path: PathLike) -> str:
    """``"ok"``, ``"missing"`` or ``"corrupt"`` (unreadable, not JSON, or not a JSON object)."""
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError):
        return "corrupt"
    return "ok" if isinstance(obj, dict) else "corrupt"


def read_json(path: PathLike) -> Optional[dict]:
    """The JSON object in ``path``, or ``None`` if it is missing or not a valid JSON object."""
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def read_config(run_dir: PathLike) -> Optional[dict]:
    return read_json(Path(run_dir) / CONFIG)


def read_metrics(run_dir: PathLike) -> Optional[dict]:
    return read_json(Path(run_dir) / METRICS)


# --------------------------------------------------------------------------------------- metrics
def mean_sem(values: Iterable[float]) -> tuple[float, float]:
    """Mean and standard error ``std(ddof=1) / sqrt(n)`` of finite-or-not ``values``.

    The standard error is NaN for fewer than two values; both are NaN for none.
    """
    v = np.asarray(list(values), dtype=np.float64).reshape(-1)
    if v.size == 0:
        return float("nan"), float("nan")
    mean = float(v.mean())
    sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")
    return mean, sem


def metrics_from_history(history: Any, *, scheme: str, device: str, seeds: Sequence[int],
                         extra: Optional[dict] = None) -> dict:
    """The ``metrics.json`` content of a finished run (``history``: a :class:`~fastpinn.trainer.History`)."""
    per_seed = [float(v) for v in np.asarray(history.final_rel_l2(), dtype=np.float64).reshape(-1)]
    mean, sem = mean_sem(per_seed)
    epochs = int(history.epochs)
    train_s = float(history.train_seconds)
    out = {
        "rel_l2": mean,
        "rel_l2_mean": mean,
        "rel_l2_sem": sem,
        "rel_l2_per_seed": per_seed,
        "seeds": [int(s) for s in seeds],
        "n_seeds": len(per_seed),
        "train_seconds": train_s,
        "warmup_seconds": float(history.warmup_seconds),
        "epochs": epochs,
        "ms_per_epoch": 1000.0 * train_s / epochs if epochs else float("nan"),
        "scheme": scheme,
        "device": device,
        "final_losses": np.asarray(history.losses[-1]).mean(axis=0).tolist() if epochs else [],
        "final_weights": np.asarray(history.weights[-1]).mean(axis=0).tolist() if epochs else [],
        "term_names": list(history.term_names),
        "skipped_updates": np.asarray(history.skipped).sum(axis=0).tolist(),
    }
    if extra:
        out.update(extra)
    return out


# ----------------------------------------------------------------------------------- environment
def device_name(device: str) -> str:
    """A human-readable name of ``device`` (the GPU's name, or the CPU model)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "cpu"


def environment(device: str) -> dict:
    """Versions and machine facts recorded in ``config.json``."""
    import torch

    from . import __version__

    return {
        "fastpinn_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device_name": device_name(device),
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda_version": torch.version.cuda,
        "argv": list(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
