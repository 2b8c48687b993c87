"""How a trainer's step runs: eager or compiled term losses, one CUDA graph per mini-batch shape, and the
warm-up that compiles and captures them before the timed epochs.

The step itself (term losses, the weighted backward, the optimizer) is the Trainer's public
:meth:`~fastpinn.Trainer.step`; a :class:`StepRunner` only decides how it is run: it builds the term loss
functions compiled or not (:mod:`fastpinn.compile_policy`), captures the step per mini-batch shape in a
:class:`~fastpinn.cuda_graph.CapturedStep` (``step_mode="cuda_graph"``) and forgets the captured graphs
whenever what they hold changes (a new optimizer stage, a loaded state, rebuilt losses).
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from .backward import WeightedBackward
from .cuda_graph import CapturedStep, batch_key
from .term_losses import TermLosses

__all__ = ["StepRunner"]

Indices = Sequence[Optional[Tensor]]


class StepRunner:
    """Compiles, warms up and captures a trainer's step.

    Args:
        step: the step, ``step(indices) -> losses [S, K]`` (captured as it is for ``"cuda_graph"``).
        term_losses: ``term_losses(indices) -> [K]`` losses ``[S]`` (warmed up with one backward each).
        loss_functions: the term loss functions, rebuilt compiled or not by :meth:`build`.
        backward: the weighted backward (told whether the terms share one evaluation graph).
        leaves: the parameter leaves each warm-up backward differentiates.
        epoch_batches: the global indices of every step of the coming epoch, without advancing the shuffling.
        local: global indices -> this rank's (indices, shares) (:meth:`BatchLayout.local
            <fastpinn.data_parallel.BatchLayout.local>`).
        state_tensors, optimizer: what a capture snapshots (asked at capture time: the stage's optimizer).
        step_mode, device: the trainer's.
        compiled: compile the term losses now.
        pending_warmup: seconds already spent on warm-up work (derivative tuning) reported by the next warm-up.
    """

    def __init__(self, step: Callable[[list[Optional[Tensor]]], Tensor],
                 term_losses: Callable[[Indices], list[Tensor]], loss_functions: TermLosses,
                 backward: WeightedBackward, *, leaves: Sequence[Tensor],
                 epoch_batches: Callable[[], list[list[Optional[Tensor]]]],
                 local: Callable[[Indices], tuple[list[Optional[Tensor]], Optional[Tensor]]],
                 state_tensors: Callable[[], list[Tensor]], optimizer: Callable[[], torch.optim.Optimizer],
                 step_mode: str, device: torch.device, compiled: bool, pending_warmup: float = 0.0) -> None:
        self.step, self.term_losses, self.loss_functions, self.backward = step, term_losses, loss_functions, backward
        self.leaves, self.epoch_batches, self.local = leaves, epoch_batches, local
        self.state_tensors, self.optimizer = state_tensors, optimizer
        self.step_mode, self.device = step_mode, device
        self.pending_warmup = pending_warmup
        #: The captured steps, one per mini-batch shape (:func:`~fastpinn.cuda_graph.batch_key`).
        self.graphs: dict[tuple, CapturedStep] = {}
        self.build(compiled)

    def build(self, compiled: bool) -> None:
        """Each term's loss function, compiled or not; forgets the captured graphs."""
        self.compiled = compiled
        self.loss_functions.build(compiled)
        # Terms on the same points share one evaluation (one graph): per-term backwards must retain it.
        self.backward.shared_graph = self.loss_functions.shared
        self.drop_graphs()

    def drop_graphs(self) -> None:
        """Forget captured graphs; the next :meth:`warmup` compiles/captures what training will use."""
        self.graphs.clear()
        self.warm = not self.compiled and self.step_mode != "cuda_graph"

    def warmup(self) -> float:
        """Compile (when compiled) and capture (``"cuda_graph"``) every graph training will use: one per
        distinct mini-batch size. Returns the seconds spent (with any pending warm-up)."""
        pending, self.pending_warmup = self.pending_warmup, 0.0  # tuning done at construction
        if self.warm:
            return pending
        tick = time.perf_counter() - pending
        shapes = {}
        for idx in self.epoch_batches():
            shapes.setdefault(batch_key(idx), idx)
        for idx in shapes.values():
            if self.step_mode == "cuda_graph":
                self.graph_for(idx)  # capturing runs (and so compiles) every graph first
                continue
            losses = self.term_losses(self.local(idx)[0])
            for k, loss in enumerate(losses):
                torch.autograd.grad(loss.sum(), self.leaves, allow_unused=True, materialize_grads=True,
                                    retain_graph=self.backward.shared_graph and k + 1 < len(losses))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.warm = True
        return time.perf_counter() - tick

    def graph_for(self, indices: Indices) -> CapturedStep:
        """The step captured for the mini-batch shape of ``indices`` (captured now if it is new)."""
        key = batch_key(indices)
        if key not in self.graphs:
            self.graphs[key] = CapturedStep(self.step, indices, self.state_tensors(), self.optimizer(), self.device)
        return self.graphs[key]
