"""A trainer's state: what of a running trainer a checkpoint holds, and how it is taken and put back.

:class:`TrainerState` holds references to the live parts of a Trainer that training continues from
(parameters, coefficients, optimizer stages, the weighted backward, the shuffling and NTK generators,
pointwise attention, the best-seen state, the resampler) and the configuration facts a checkpoint must
agree on (:meth:`TrainerState.meta`). The file format itself (checksummed, weights-only) is
:mod:`fastpinn.checkpoint`'s; the Trainer's ``state_dict``/``load_state_dict``/``save_checkpoint``/
``load_checkpoint`` are thin calls into this module (:class:`TrainerCheckpoints`, a base class of the Trainer).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .backward import WeightedBackward
from .checkpoint import (CHECKPOINT_FORMAT, check_state_dict, network_meta, read_checkpoint, scheme_meta,
                         write_checkpoint)
from .collectives import collective
from .data_parallel import torch_distributed
from .divergence import BestSeen
from .errors import CheckpointError
from .optim import StageRunner
from .problem import Problem
from .rba import ResidualAttention
from .resampling import Resampler
from .step_runner import StepRunner

__all__ = ["TrainerState", "TrainerCheckpoints", "save_state", "check_max_epoch"]


class TrainerState:
    """The parts of a trainer a checkpoint holds, by reference (not copies), and its configuration facts.

    ``ntk_generator``: the NTK subsample's generator, ``None`` when the scheme reads no traces.
    ``on_points_changed(terms)``: called after a loaded state changed the point counts of ``terms`` (RAR).
    """

    def __init__(self, *, problem: Problem, scheme: Any, net: nn.Module, leaves: Sequence[Tensor], theta: Tensor,
                 coefficients: Optional[nn.Parameter], coefficient_names: Sequence[str], dtype: torch.dtype,
                 update_schedule: str, stages: StageRunner, backward: WeightedBackward,
                 batch_generator: torch.Generator, ntk_generator: Optional[torch.Generator],
                 attention: Optional[ResidualAttention], best: BestSeen, resampler: Optional[Resampler],
                 device: torch.device, on_points_changed: Callable[[Sequence[int]], None]) -> None:
        self.problem, self.scheme, self.net, self.leaves = problem, scheme, net, leaves
        self.theta, self.coefficients, self.coefficient_names = theta, coefficients, list(coefficient_names)
        self.dtype, self.update_schedule, self.stages, self.backward = dtype, update_schedule, stages, backward
        self.batch_generator, self.ntk_generator = batch_generator, ntk_generator
        self.attention, self.best, self.resampler, self.device = attention, best, resampler, device
        self.on_points_changed = on_points_changed

    def meta(self) -> dict[str, Any]:
        """What a checkpoint must agree on with the trainer that loads it."""
        return {
            "ensemble": self.problem.ensemble,
            "terms": list(self.problem.term_names),
            "scheme": scheme_meta(self.scheme),
            "network": network_meta(self.net, self.theta.numel(), self.leaves),
            "coefficients": list(self.coefficient_names),
            "dtype": str(self.dtype).replace("torch.", ""),
            "update_schedule": self.update_schedule,
            "stages": self.stages.describe(),
            "resampling": None if self.resampler is None else self.resampler.describe(),
        }

    def state_dict(self, epoch: int) -> dict[str, Any]:
        """Everything training continues from at ``epoch``, plus the format version and :meth:`meta`."""
        return {
            "format_version": CHECKPOINT_FORMAT,
            "meta": self.meta(),
            "epoch": epoch,
            "theta": self.theta.detach().clone(),
            "coefficients": None if self.coefficients is None else self.coefficients.detach().clone(),
            **self.stages.state_dict(),  # "stage", "optimizer" (the stage's), "lr_scheduler"
            "backward": self.backward.state_dict(),  # weights, their schedule's step, non-finite counts
            "batch_generator": self.batch_generator.get_state(),
            "ntk_generator": self.ntk_generator.get_state() if self.ntk_generator is not None else None,
            "attention": None if self.attention is None else self.attention.state_dict(),
            "best": self.best.state_dict(),
            "resampling": None if self.resampler is None else self.resampler.state_dict(),
        }

    def check(self, state: Any, *, source: str = "checkpoint") -> None:
        """:class:`CheckpointError` if ``state`` was not written by a trainer of this configuration."""
        check_state_dict(state, self.meta(), self.theta.shape, source=source)

    def load_state_dict(self, state: dict[str, Any], set_epoch: Callable[[int], None]) -> None:
        """Put ``state`` (already checked) back into the parts; ``set_epoch`` takes its epoch."""
        with torch.no_grad():
            self.theta.copy_(state["theta"])
            if self.coefficients is not None:
                if state.get("coefficients") is None:
                    raise ValueError(f"checkpoint has no trainable coefficients; this trainer has {self.coefficient_names}")
                self.coefficients.copy_(state["coefficients"])
        try:
            self.stages.load_state_dict(state)
        except ValueError as exc:
            raise CheckpointError(f"the state does not match this trainer: {exc}") from None
        self.backward.load_state_dict(state["backward"])
        self.batch_generator.set_state(state["batch_generator"])
        if self.attention is not None:
            if state.get("attention") is None:
                raise CheckpointError("the checkpoint has no pointwise attention weights; this trainer uses attention")
            self.attention.load_state_dict({k: v.to(self.device) for k, v in state["attention"].items()})
        if self.ntk_generator is not None and state.get("ntk_generator") is not None:
            self.ntk_generator.set_state(state["ntk_generator"])
        set_epoch(int(state["epoch"]))
        self.best.load_state_dict(state.get("best"))
        if self.resampler is not None:
            try:
                self.on_points_changed(self.resampler.load_state_dict(state.get("resampling")))
            except ValueError as exc:
                raise CheckpointError(f"the state does not match this trainer: {exc}") from None


def save_state(path: str, state_dict: Callable[[], dict[str, Any]], extra: Optional[dict[str, Any]], *,
               rank: int, world_size: int) -> None:
    """Write ``state_dict()`` (plus ``extra``) to ``path`` atomically on rank 0; with several ranks, every
    rank then waits on a barrier until the file is there."""
    if rank == 0:
        state = state_dict()
        if extra is not None:
            state["extra"] = extra
        write_checkpoint(path, state)
    if world_size > 1:
        collective("the checkpoint barrier", torch_distributed().barrier)


def check_max_epoch(state: dict[str, Any], path: str, max_epoch: Optional[int]) -> None:
    """:class:`CheckpointError` if the checkpoint in ``path`` is past ``max_epoch`` (``None``: no limit)."""
    if max_epoch is not None and state["epoch"] > max_epoch:
        raise CheckpointError(f"checkpoint {str(path)!r} does not match this run: epoch is {state['epoch']} "
                              f"in the checkpoint but the run has only {max_epoch} epochs")


class TrainerCheckpoints:
    """The checkpoint methods of a :class:`~fastpinn.Trainer` (a base class of it; documented there too): thin
    calls into its :class:`TrainerState` (``checkpoint_parts``), :func:`save_state` and
    :mod:`fastpinn.checkpoint`. They read only the Trainer's public attributes below, set by its constructor.
    """

    checkpoint_parts: TrainerState
    step_runner: StepRunner
    epoch: int
    rank: int
    world_size: int
    device: torch.device

    def state_dict(self) -> dict[str, Any]:
        """Everything training continues from: parameters, optimizer, weights, shuffling, epoch, best-seen
        state, plus the format version and the configuration facts :meth:`load_state_dict` checks."""
        return self.checkpoint_parts.state_dict(self.epoch)

    def check_state_dict(self, state: Any, *, source: str = "checkpoint") -> None:
        """Raise :class:`CheckpointError` naming the field and both values if ``state`` was not written by a
        trainer of this configuration (format version, ensemble size, terms, scheme and its parameters,
        network shape, dtype, epoch)."""
        self.checkpoint_parts.check(state, source=source)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (checked with :meth:`check_state_dict` first)."""
        self.check_state_dict(state, source="state")
        self.checkpoint_parts.load_state_dict(state, lambda epoch: setattr(self, "epoch", epoch))
        # The optimizer and weighter replaced their state tensors: captured graphs point at the old ones.
        self.step_runner.drop_graphs()

    def save_checkpoint(self, path: str, extra: Optional[dict[str, Any]] = None) -> None:
        """``torch.save`` of :meth:`state_dict` (plus ``extra``, e.g. the history so far), written atomically.
        Distributed: rank 0 writes, every rank waits on a barrier until the file is there (the state is the
        same on every rank and does not depend on the number of ranks)."""
        save_state(path, self.state_dict, extra, rank=self.rank, world_size=self.world_size)

    @staticmethod
    def read_checkpoint(path: str, map_location: Union[str, torch.device, None] = "cpu") -> dict[str, Any]:
        """The state dict stored in ``path``; :class:`CheckpointError` (naming the path) if it is truncated
        or corrupt, ``FileNotFoundError`` if missing (:func:`fastpinn.checkpoint.read_checkpoint`)."""
        return read_checkpoint(path, map_location)

    def load_checkpoint(self, path: str, *, max_epoch: Optional[int] = None) -> dict[str, Any]:
        """Continue from a checkpoint file, after checking it matches this trainer; returns its ``extra``
        (``{}`` if none). ``max_epoch``: refuse a checkpoint past this epoch (e.g. the run's length)."""
        state = self.read_checkpoint(path, map_location=self.device)
        self.check_state_dict(state, source=f"checkpoint {str(path)!r}")
        check_max_epoch(state, path, max_epoch)
        self.load_state_dict(state)
        return dict(state.get("extra") or {})
