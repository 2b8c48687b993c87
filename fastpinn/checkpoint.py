"""The checkpoint format: what a trainer state holds, how it is validated, written and read.

Importable without the Trainer (the run layer reads checkpoints to decide what a directory holds).

A checkpoint file is ``torch.save`` of ``{"format": "fastpinn-checkpoint", "version": CHECKPOINT_FORMAT,
"sha256": hex digest, "payload": uint8 tensor}``, where the payload is ``torch.save`` of the state. Both
levels hold only tensors and plain containers (dict/list/tuple/str/int/float/bool/None) and are read
with ``torch.load(weights_only=True)``, so loading a file, whatever it holds, never runs code; the
checksum over the payload turns a flipped bit into :class:`CorruptCheckpointError` instead of a silent
resume from different numbers. Files of the previous format are refused with a message saying so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import re
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from . import _io
from .errors import CheckpointError, CorruptCheckpointError
from .network import MLP

__all__ = ["CHECKPOINT_FORMAT", "scheme_meta", "network_meta", "check_state_dict", "plain", "write_checkpoint",
           "read_checkpoint"]

#: Version of the checkpoint layout written by :meth:`Trainer.save_checkpoint`; bumped when it changes.
#: 2: checksummed wrapper, weights-only content, the weighted backward's own state_dict.
CHECKPOINT_FORMAT = 2
_MAGIC = "fastpinn-checkpoint"
_OLDER = ("it was written by an older fastpinn, whose checkpoints are neither checksummed nor loadable without "
          "running code; it cannot be resumed: retrain (the run commands: pass --force to start afresh)")

#: Configuration facts a checkpoint must share with the trainer that loads it, compared as a whole.
_PLAIN_META = ("ensemble", "terms", "dtype", "update_schedule", "coefficients")


def scheme_meta(scheme: Any) -> dict[str, Any]:
    """A scheme's type and parameters (its dataclass fields)."""
    return {"type": type(scheme).__name__, **{f.name: getattr(scheme, f.name) for f in dataclasses.fields(scheme)}}


def network_meta(net: nn.Module, n_params: int, leaves: Sequence[Tensor]) -> dict[str, Any]:
    """An MLP's shape and activation, or a user module's class and the shapes of what is trained."""
    if isinstance(net, MLP):
        # The activation changes what theta means (the same shape resumes silently otherwise).
        return {"in_dim": net.in_dim, "out_dim": net.out_dim, "depth": net.depth, "width": net.width,
                "n_params": net.n_params, "activation": net.activation.name}
    return {"type": f"{type(net).__module__}.{type(net).__qualname__}", "n_params": n_params,
            "shapes": [list(p.shape) for p in leaves]}


def check_state_dict(state: Any, meta: dict[str, Any], theta_shape: Sequence[int], *,
                     source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` naming the field and both values if ``state`` was not written by a
    trainer whose configuration is ``meta`` (format version, ensemble size, terms, scheme and its
    parameters, network shape, dtype, optimizer stages) with parameters of ``theta_shape``, or its epoch is not
    valid."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{source} does not hold a trainer state (got {type(state).__name__})")

    def mismatch(field: str, theirs: Any, ours: Any) -> CheckpointError:
        return CheckpointError(f"{source} does not match this trainer: {field} is {theirs!r} in the "
                               f"checkpoint but {ours!r} here")

    version = state.get("format_version")
    if version != CHECKPOINT_FORMAT:
        raise mismatch("format_version", version, CHECKPOINT_FORMAT)
    missing = [k for k in ("meta", "epoch", "theta", "optimizer", "backward", "batch_generator") if k not in state]
    if missing:
        raise CheckpointError(f"{source} is incomplete: missing {missing}")
    theirs_meta = state["meta"]
    for key in _PLAIN_META:
        theirs = theirs_meta.get(key, [] if key == "coefficients" else None)  # no coefficients: older files
        if theirs != meta[key]:
            raise mismatch(key, theirs, meta[key])
    if theirs_meta.get("resampling") != meta.get("resampling"):  # None: no resampling (and older files)
        raise mismatch("resampling", theirs_meta.get("resampling"), meta.get("resampling"))
    stages = theirs_meta.get("stages")  # files written before stages had one optimizer
    if stages is not None and stages != meta.get("stages"):
        raise mismatch("stages", stages, meta.get("stages"))
    for group in ("scheme", "network"):
        theirs = theirs_meta.get(group) or {}
        for key, value in meta[group].items():
            if theirs.get(key) != value:
                raise mismatch(f"{group}.{key}", theirs.get(key), value)
    theta = state["theta"]
    if not isinstance(theta, Tensor) or tuple(theta.shape) != tuple(theta_shape):
        got = tuple(theta.shape) if isinstance(theta, Tensor) else type(theta).__name__
        raise mismatch("theta shape", got, tuple(theta_shape))
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise mismatch("epoch", epoch, "an integer >= 0")


def plain(value: Any, where: str = "state") -> Any:
    """``value`` as tensors and plain containers (dict/list/tuple/str/int/float/bool/None) -- what
    ``torch.load(weights_only=True)`` reads back: numeric NumPy arrays become tensors, string arrays lists,
    NumPy scalars Python numbers. Anything else is a ``TypeError`` naming where it is (``where``)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biufc":
            return torch.from_numpy(np.ascontiguousarray(value).copy())
        if value.dtype.kind == "U":
            return value.tolist()
    elif isinstance(value, np.generic):
        return value.item()
    elif isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"a checkpoint holds only plain containers: {where} has a key of type {type(k).__name__}")
            out[k] = plain(v, f"{where}[{k!r}]")
        return out
    elif isinstance(value, (list, tuple)):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f"a checkpoint holds only tensors, arrays and plain containers; {where} is a "
                    f"{type(value).__module__}.{type(value).__qualname__}")


def _serialized(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Write ``state`` (made :func:`plain`) to ``path`` with its SHA-256, atomically (a reader sees the old
    file or the new one, never a mix)."""
    payload = _serialized(plain(state))
    wrapper = {"format": _MAGIC, "version": CHECKPOINT_FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
               "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}
    _io.atomic_write_bytes(path, _serialized(wrapper))


def _load_weights_only(source: Any, name: str, map_location: Union[str, torch.device, None]) -> Any:
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # The restricted unpickler names the global it refused ("Unsupported global: GLOBAL os.system ...").
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise CorruptCheckpointError(
                f"checkpoint {name!r} holds Python objects other than tensors and plain containers ({found.group(1)}); "
                f"it was not loaded, since that could run code. Either {_OLDER}, or it is not a fastpinn "
                "checkpoint") from None
        # Only what was wrong, not torch's advice to load the file unrestricted.
        why = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(exc))
        raise CorruptCheckpointError(f"checkpoint {name!r} is truncated or corrupt "
                                     f"({why.group(1).strip() if why else 'not a pickle'})") from None
    except Exception as exc:  # noqa: BLE001 - zip/EOF/storage errors of a damaged file all mean "corrupt"
        raise CorruptCheckpointError(f"checkpoint {name!r} is truncated or corrupt ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_checkpoint(path: str, map_location: Union[str, torch.device, None] = "cpu") -> dict[str, Any]:
    """The state dict stored in ``path``, read without running any code from the file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CorruptCheckpointError: (naming the path) the file is truncated or corrupt, its content does not
            match its checksum, it holds anything but tensors and plain containers, or it was written by an
            older fastpinn.
    """
    name = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {name!r} does not exist")
    wrapper = _load_weights_only(path, name, "cpu")
    if isinstance(wrapper, dict) and "format_version" in wrapper and "payload" not in wrapper:
        raise CorruptCheckpointError(f"checkpoint {name!r} cannot be used: format_version is "
                                     f"{wrapper['format_version']!r} in the checkpoint but {CHECKPOINT_FORMAT} "
                                     f"here; {_OLDER}")
    if not (isinstance(wrapper, dict) and wrapper.get("format") == _MAGIC):
        raise CorruptCheckpointError(f"checkpoint {name!r} is truncated or corrupt (not a fastpinn checkpoint)")
    if wrapper.get("version") != CHECKPOINT_FORMAT:
        raise CorruptCheckpointError(f"checkpoint {name!r} cannot be used: its format is {wrapper.get('version')!r} "
                                     f"but this fastpinn reads {CHECKPOINT_FORMAT}")
    payload, stored = wrapper.get("payload"), wrapper.get("sha256")
    if not (isinstance(payload, torch.Tensor) and payload.dtype == torch.uint8 and isinstance(stored, str)):
        raise CorruptCheckpointError(f"checkpoint {name!r} is truncated or corrupt (no payload or checksum)")
    data = payload.numpy().tobytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != stored:
        raise CorruptCheckpointError(f"checkpoint {name!r} is truncated or corrupt: its content does not match its "
                                     f"SHA-256 checksum (stored {stored[:16]}..., computed {actual[:16]}...)")
    state = _load_weights_only(io.BytesIO(data), name, map_location)
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"checkpoint {name!r} does not hold a trainer state")
    return state
