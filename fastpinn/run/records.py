"""What a run records: strict JSON files, the metrics of a finished run, the environment it ran in."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from .. import _io

__all__ = ["write_json", "read_json", "json_status", "mean_sem", "best_at_saves", "metrics_from_history", "environment", "device_name"]

PathLike = Union[str, os.PathLike]


# ------------------------------------------------------------------------------------------ JSON
def write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as strict JSON (NaN/Inf become ``null``: :func:`fastpinn._io.plain_json`), atomically."""
    _io.atomic_write_json(path, obj)


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


def best_at_saves(eval_epochs: Sequence[int], rel_l2: Any, every: int) -> dict:
    """Per seed, the lowest rel. L2 at the evaluations ``eval_epochs`` (``[M]``, counted after the step)
    that are positive multiples of ``every`` -- what a run that saves its best weights every ``every``
    epochs reports (:data:`fastpinn.paper_numbers.AUTHORS_SAVE_EVERY`). ``rel_l2``: ``[M, S]``.

    Returns table metrics: ``saves_rel_l2_per_seed`` (``[S]``; NaN for a member never finite there),
    ``saves_epochs`` (the evaluated epochs used) and ``saves_missing`` (why there is no value: ``""``
    when there is one). Only those epochs count: none falls back to another grid."""
    epochs = np.asarray(eval_epochs, dtype=np.int64).reshape(-1)
    errors = np.asarray(rel_l2, dtype=np.float64).reshape(epochs.size, -1)
    at = (epochs > 0) & (epochs % every == 0)
    if not at.any():
        return {"saves_rel_l2_per_seed": [], "saves_epochs": [],
                "saves_missing": f"{_describe_epochs(epochs.tolist())}: none a multiple of {every}"}
    with np.errstate(invalid="ignore"):
        chosen = np.where(np.isfinite(errors[at]), errors[at], np.inf).min(axis=0)
    return {"saves_rel_l2_per_seed": [float(v) if np.isfinite(v) else float("nan") for v in chosen],
            "saves_epochs": [int(e) for e in epochs[at]], "saves_missing": ""}


def _describe_epochs(epochs: list[int]) -> str:
    """``"evaluated at epochs 300, 600, ..., 2,700"``-style summary of evaluation epochs."""
    if not epochs:
        return "never evaluated"
    if len(epochs) <= 3:
        return "evaluated at epochs " + ", ".join(f"{e:,}" for e in epochs)
    return f"evaluated at epochs {epochs[0]:,}, {epochs[1]:,}, ..., {epochs[-1]:,}"


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

    from .. import __version__

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
