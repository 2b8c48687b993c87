"""When the loss weights update: the one implementation of the update schedule, and the gates that count it.

A schedule is ``first, first + period, first + 2 period, ...`` in some unit. The :class:`~fastpinn.Weighter`
holds it in epochs (``period = tau``, ``first = first_update``; :func:`fastpinn.weighter.first_update_for`
gives the authors' shift); a :class:`~fastpinn.WeightedBackward` counts it in calls (``in_steps``: every
``tau``-th epoch's first mini-batch) with an :class:`UpdateGate`: :class:`HostGate` on the host,
:class:`DeviceGate` in a device tensor. All of them decide with :meth:`UpdateSchedule.is_update` (or its
device form, the same arithmetic in tensor ops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

from .validation import check_int

__all__ = ["UpdateSchedule", "UpdateGate", "HostGate", "DeviceGate", "make_gate", "GATES"]

GATES = ("host", "device")


@dataclass(frozen=True)
class UpdateSchedule:
    """Updates at ``first_step + n * period`` for ``n = 0, 1, ...`` (``period >= 1``, ``first_step >= 0``)."""

    period: int
    first_step: int = 0

    def __post_init__(self) -> None:
        check_int("period", self.period, minimum=1)
        check_int("first_step", self.first_step, minimum=0)

    def is_update(self, step: int) -> bool:
        """Whether ``step`` (0-based) updates."""
        since = step - self.first_step
        return since >= 0 and since % self.period == 0

    def is_update_on_device(self, step: Tensor, since: Tensor, started: Tensor, out: Tensor) -> Tensor:
        """:meth:`is_update` for a 0-dim int64 ``step`` tensor, written into the 0-dim bool ``out`` through the
        scratch buffers ``since`` (int64) and ``started`` (bool): nothing allocated, nothing synced."""
        torch.sub(step, self.first_step, out=since)
        torch.ge(since, 0, out=started)
        torch.remainder(since, self.period, out=since)
        torch.eq(since, 0, out=out)
        out.logical_and_(started)
        return out

    def in_steps(self, steps_per_epoch: int) -> "UpdateSchedule":
        """This schedule (in epochs) counted in steps of ``steps_per_epoch`` per epoch: the first step of
        every updating epoch."""
        check_int("steps_per_epoch", steps_per_epoch, minimum=1)
        return UpdateSchedule(self.period * steps_per_epoch, self.first_step * steps_per_epoch)


class UpdateGate:
    """Decides at which steps the loss weights update: steps ``0, period, 2 period, ...`` counted from the
    gate's start, ``period = tau * steps_per_epoch`` (the first mini-batch of every ``tau``-th epoch),
    shifted to start at ``first_step`` (an :class:`UpdateSchedule`).

    Two kinds: :class:`HostGate` counts on the host (a plain int: no sync; per-term backwards and statistics
    only on update steps, one backward of the weighted sum between them) and :class:`DeviceGate` counts in a
    device tensor (the decision never reaches Python, so the step can be captured in a CUDA graph; per-term
    backwards and statistics run every step, the EMA is masked off between updates).
    """

    def __init__(self, period: int, first_step: int = 0) -> None:
        self.schedule = UpdateSchedule(period, first_step)

    @property
    def period(self) -> int:
        return self.schedule.period

    @property
    def first_step(self) -> int:
        return self.schedule.first_step

    def decide(self) -> Union[bool, Tensor]:
        """Whether the current step updates (a bool, or a 0-dim bool tensor for the device gate)."""
        raise NotImplementedError

    def advance(self) -> None:
        """Count one step."""
        raise NotImplementedError

    def set_step(self, step: int) -> None:
        """Set the step count (e.g. ``epoch * steps_per_epoch`` after a resume)."""
        raise NotImplementedError

    @property
    def step(self) -> int:
        """The step count (reads the device for a :class:`DeviceGate`)."""
        raise NotImplementedError

    def state_tensors(self) -> list[Tensor]:
        """Device tensors a captured CUDA graph mutates (snapshotted around capture)."""
        return []


class HostGate(UpdateGate):
    """:class:`UpdateGate` with the step count in a Python int."""

    def __init__(self, period: int, first_step: int = 0) -> None:
        super().__init__(period, first_step)
        self._step = 0

    def decide(self) -> bool:
        return self.schedule.is_update(self._step)

    def advance(self) -> None:
        self._step += 1

    def set_step(self, step: int) -> None:
        self._step = int(step)

    @property
    def step(self) -> int:
        return self._step


class DeviceGate(UpdateGate):
    """:class:`UpdateGate` with the step count in a device tensor; :meth:`decide` writes a 0-dim bool
    tensor into a fixed buffer (same address every call, nothing allocated)."""

    def __init__(self, period: int, first_step: int = 0, device: Union[str, torch.device, None] = None) -> None:
        super().__init__(period, first_step)
        self.counter = torch.zeros((), dtype=torch.int64, device=device)
        self._since = torch.zeros((), dtype=torch.int64, device=device)
        self._started = torch.zeros((), dtype=torch.bool, device=device)
        self.active = torch.zeros((), dtype=torch.bool, device=device)

    def decide(self) -> Tensor:
        return self.schedule.is_update_on_device(self.counter, self._since, self._started, self.active)

    def advance(self) -> None:
        self.counter.add_(1)

    def set_step(self, step: int) -> None:
        self.counter.fill_(int(step))  # from a host int: no sync

    @property
    def step(self) -> int:
        return int(self.counter)

    def state_tensors(self) -> list[Tensor]:
        return [self.counter]


def make_gate(kind: str, schedule: UpdateSchedule, device: Union[str, torch.device, None] = None) -> UpdateGate:
    """A :class:`HostGate` (``kind="host"``) or :class:`DeviceGate` (``"device"``, counting on ``device``)
    for ``schedule`` (in steps)."""
    if kind not in GATES:
        raise ValueError(f"gate must be 'host' or 'device', got {kind!r}")
    if kind == "host":
        return HostGate(schedule.period, schedule.first_step)
    return DeviceGate(schedule.period, schedule.first_step, device)
