"""The checkpoint format: what a trainer state holds, how it is validated, written and read.

Importable without the Trainer (the run layer reads checkpoints to decide what a directory holds).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any, Sequence, Union

import torch
from torch import Tensor, nn

from . import _io
from .errors import CheckpointError, CorruptCheckpointError
from .network import MLP

__all__ = ["CHECKPOINT_FORMAT", "scheme_meta", "network_meta", "check_state_dict", "write_checkpoint",
           "read_checkpoint"]

#: Version of the checkpoint layout written by :meth:`Trainer.save_checkpoint`; bumped when it changes.
CHECKPOINT_FORMAT = 1

#: Configuration facts a checkpoint must share with the trainer that loads it, compared as a whole.
_PLAIN_META = ("ensemble", "terms", "dtype", "update_schedule", "coefficients")


def scheme_meta(scheme: Any) -> dict[str, Any]:
    """A scheme's type and parameters (its dataclass fields)."""
    return {"type": type(scheme).__name__, **{f.name: getattr(scheme, f.name) for f in dataclasses.fields(scheme)}}


def network_meta(net: nn.Module, n_params: int, leaves: Sequence[Tensor]) -> dict[str, Any]:
    """An MLP's shape, or a user module's class and the shapes of what is trained."""
    if isinstance(net, MLP):
        return {"in_dim": net.in_dim, "out_dim": net.out_dim, "depth": net.depth, "width": net.width,
                "n_params": net.n_params}
    return {"type": f"{type(net).__module__}.{type(net).__qualname__}", "n_params": n_params,
            "shapes": [list(p.shape) for p in leaves]}


def check_state_dict(state: Any, meta: dict[str, Any], theta_shape: Sequence[int], *,
                     source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` naming the field and both values if ``state`` was not written by a
    trainer whose configuration is ``meta`` (format version, ensemble size, terms, scheme and its
    parameters, network shape, dtype) with parameters of ``theta_shape``, or its epoch is not valid."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{source} does not hold a trainer state (got {type(state).__name__})")

    def mismatch(field: str, theirs: Any, ours: Any) -> CheckpointError:
        return CheckpointError(f"{source} does not match this trainer: {field} is {theirs!r} in the "
                               f"checkpoint but {ours!r} here")

    version = state.get("format_version")
    if version != CHECKPOINT_FORMAT:
        raise mismatch("format_version", version, CHECKPOINT_FORMAT)
    missing = [k for k in ("meta", "epoch", "theta", "optimizer", "weighter", "batch_generator") if k not in state]
    if missing:
        raise CheckpointError(f"{source} is incomplete: missing {missing}")
    theirs_meta = state["meta"]
    for key in _PLAIN_META:
        theirs = theirs_meta.get(key, [] if key == "coefficients" else None)  # no coefficients: older files
        if theirs != meta[key]:
            raise mismatch(key, theirs, meta[key])
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


def write_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a reader sees the old file or the new one, never a mix)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    _io.atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path: str, map_location: Union[str, torch.device, None] = "cpu") -> dict[str, Any]:
    """The state dict stored in ``path``; :class:`CorruptCheckpointError` (naming the path) if it is
    truncated or corrupt, ``FileNotFoundError`` if missing."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - zip/pickle/EOF errors of a damaged file all mean "corrupt"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptCheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt ({first})") from None
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"checkpoint {str(path)!r} does not hold a trainer state")
    return state
