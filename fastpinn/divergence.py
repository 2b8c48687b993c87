"""What the training loop keeps to recover from a bad run: the best-seen parameters and the last finite state.

:class:`BestSeen` records, at every evaluation, the lowest relative L2 error per ensemble member, its epoch
and the parameters that gave it (``Trainer.best``, ``Trainer.restore_best``; the authors' protocol). The
roll-back helpers serve the NaN check at evaluation boundaries: :func:`snapshot` keeps the last state that
passed, :func:`boundary_decision` reads (and, distributed, agrees on) the device flag, and
:func:`locate_nonfinite` names what diverged first, for the :class:`~fastpinn.NonFiniteError`.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .collectives import collective
from .data_parallel import torch_distributed

__all__ = ["BestSeen", "snapshot", "boundary_decision", "locate_nonfinite"]


class BestSeen:
    """The best relative L2 error seen per member, its epoch and parameters (``None`` before any evaluation)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        #: ``"rel_l2"`` ``[S]`` (float64), ``"epoch"`` ``[S]`` (-1 while none was finite), ``"theta"`` ``[S, P]``.
        self.state: Optional[dict[str, Tensor]] = None

    def track(self, err: np.ndarray, theta: Tensor, epoch: int) -> None:
        """Record the evaluation ``err`` ``[S]`` of the parameters ``theta`` ``[S, P]`` at ``epoch``."""
        e = torch.as_tensor(err, dtype=torch.float64, device=self.device)
        theta = theta.detach()
        if self.state is None:
            self.state = {"rel_l2": torch.full_like(e, math.inf), "epoch": torch.full(e.shape, -1, dtype=torch.int64,
                                                                                      device=self.device),
                          "theta": theta.clone()}
        b = self.state
        better = e < b["rel_l2"]  # a NaN error never counts as better
        b["rel_l2"] = torch.where(better, e, b["rel_l2"])
        b["epoch"] = torch.where(better, torch.full_like(b["epoch"], epoch), b["epoch"])
        b["theta"] = torch.where(better.unsqueeze(1), theta, b["theta"])

    def restore_into(self, theta: Tensor) -> None:
        """Copy the best parameters (per member) into ``theta`` (any shape holding ``[S, P]`` elements)."""
        if self.state is None:
            raise RuntimeError("no evaluation has been recorded yet (the problem needs a reference solution)")
        with torch.no_grad():
            theta.copy_(self.state["theta"].reshape(theta.shape))

    def history_extra(self) -> dict[str, Any]:
        """``best_rel_l2`` and ``best_epoch`` per member for ``History.extra`` (empty before any evaluation)."""
        if self.state is None:
            return {}
        return {"best_rel_l2": self.state["rel_l2"].cpu().numpy().tolist(),
                "best_epoch": self.state["epoch"].cpu().numpy().tolist()}

    def state_dict(self) -> Optional[dict[str, Tensor]]:
        return None if self.state is None else {k: v.clone() for k, v in self.state.items()}

    def load_state_dict(self, state: Optional[dict[str, Tensor]]) -> None:
        self.state = None if state is None else {k: v.to(self.device).clone() for k, v in state.items()}


def snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a trainer's state dict in memory (the state to roll back to)."""
    with torch.no_grad():
        return copy.deepcopy(state)


def boundary_decision(nonfinite: Tensor, theta: Tensor, stopped: bool, stop_requested: bool,
                      world_size: int) -> tuple[bool, bool]:
    """``(diverged, stopped)`` at a boundary: the parameters are checked too (folded into the ``nonfinite``
    flag); distributed, both are decided together from every rank's ``stop_requested`` (no rank raises or
    stops while the others wait); alone, ``stopped`` stands."""
    torch.logical_or(nonfinite, ~torch.isfinite(theta).all(), out=nonfinite)
    if world_size > 1:
        flag = torch.stack([nonfinite, torch.tensor(stop_requested, device=nonfinite.device)]).to(torch.int32)
        dist = torch_distributed()
        collective("the divergence/stop decision", dist.all_reduce, flag, op=dist.ReduceOp.MAX)
        nonfinite.copy_(flag[0].bool())
        stopped = bool(flag[1])
    return bool(nonfinite), stopped


def locate_nonfinite(losses: Tensor, first_epoch: int, theta: Tensor, epoch: int,
                     term_names: Sequence[str]) -> tuple[Optional[str], Optional[int], int, str]:
    """After the device flag fired: ``(term, member, epoch, description)`` of what went non-finite first (host
    reads, only on failure). ``losses``: the ``[E, S, K]`` log since the last check, whose first row is
    ``first_epoch``; ``theta`` ``[S, P]`` the parameters now, at ``epoch``."""
    bad = ~torch.isfinite(losses)
    if bool(bad.any()):
        e, s, k = (int(v) for v in bad.nonzero()[0])
        name = term_names[k]
        return name, s, first_epoch + e, f"loss {name!r} of member {s} at epoch {first_epoch + e}"
    members = (~torch.isfinite(theta)).any(dim=1)
    s = int(members.nonzero()[0, 0])
    return None, s, epoch, f"the network parameters of member {s} (found at epoch {epoch})"
