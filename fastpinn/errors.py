"""The errors training and checkpoints raise, importable without the Trainer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .history import History

__all__ = ["NonFiniteError", "CheckpointError", "CorruptCheckpointError", "DeviceUnavailableError",
           "CollectiveError"]


class NonFiniteError(FloatingPointError):
    """A loss or the parameters became NaN/Inf during training.

    When :meth:`Trainer.train` raises it, the trainer has been put back to its last finite state (the last
    ``eval_every`` boundary that passed the check). Attributes: ``term`` (name of the first non-finite loss,
    ``None`` if only the parameters were), ``member`` (ensemble member), ``epoch`` (the epoch whose loss
    was non-finite, or the boundary at which the parameters were found non-finite), ``last_good_epoch``
    (the epoch the trainer was restored to), ``history`` (the :class:`History` of the call up to
    ``last_good_epoch``) and ``checkpoint`` (path of the last good checkpoint, when a caller wrote one).
    """

    def __init__(self, message: str, *, term: Optional[str] = None, member: Optional[int] = None,
                 epoch: Optional[int] = None, last_good_epoch: Optional[int] = None,
                 history: Optional["History"] = None, checkpoint: Optional[str] = None) -> None:
        super().__init__(message)
        self.term, self.member, self.epoch = term, member, epoch
        self.last_good_epoch, self.history, self.checkpoint = last_good_epoch, history, checkpoint


class CheckpointError(ValueError):
    """A checkpoint cannot be used: written by a different configuration (or format version)."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file cannot be read: truncated or corrupt (its checksum included), holding anything but
    tensors and plain containers (never loaded: that would run code), or written by an older fastpinn."""


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this machine (e.g. ``"cuda"`` without CUDA)."""



class CollectiveError(RuntimeError):
    """A collective every rank must join failed on this rank (a peer died, or a timeout passed)."""
