"""One training step as a user calls it: the term losses, the weighted backward, the optimizer.

:class:`TrainerStep` holds the :class:`~fastpinn.Trainer`'s public step pieces -- :meth:`~TrainerStep.term_losses`,
:meth:`~TrainerStep.term_gradients`, :meth:`~TrainerStep.step`, the warm-up and ``compile="auto"``'s compilation,
the mini-batches of an epoch and what a step mutates -- over the parts the Trainer composes
(:mod:`fastpinn.trainer_build`); how a step is run (compiled, captured) is :mod:`fastpinn.step_runner`'s. The
Trainer's loop (:mod:`fastpinn.trainer`) calls exactly these, as a user's own loop would.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from .backward import WeightedBackward
from .compile_policy import compile_or_fall_back
from .data_parallel import BatchLayout
from .optim import StageRunner, closure_step
from .problem import Problem
from .rba import ResidualAttention
from .step_runner import StepRunner
from .term_losses import TermLosses
from .trainer_build import TrainerParts

__all__ = ["TrainerStep"]


class TrainerStep:
    """The public step pieces of a :class:`~fastpinn.Trainer` (its base class; documented there too).

    They read only the Trainer's public attributes below, set by its constructor.
    """

    parts: TrainerParts
    problem: Problem
    batches: BatchLayout
    members: int
    world_size: int
    coefficients: Optional[torch.nn.Parameter]
    coefficient_names: list[str]
    stages: StageRunner
    backward: WeightedBackward
    attention: Optional[ResidualAttention]
    loss_functions: TermLosses
    step_runner: StepRunner
    compile_decision: Optional[dict[str, Any]]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer of the stage training is in."""
        return self.stages.optimizer

    @property
    def lr_scheduler(self) -> Any:
        """The lr scheduler of the stage training is in (``None``: none)."""
        return self.stages.scheduler

    @property
    def theta(self) -> Tensor:
        """The flat parameters ``[P]`` (``[S, P]``) the optimizer steps."""
        return self.parts.flat

    @property
    def shard_sizes(self) -> list[int]:
        """``[K]`` the points of each term this rank holds (all of them in one process)."""
        return [hi - lo for lo, hi in self.parts.shard_ranges]

    @property
    def backward_passes(self) -> int:
        """Autograd backward calls made by training steps so far."""
        return self.backward.backward_passes

    def coefficient_values(self) -> dict[str, Tensor]:
        """The trainable coefficients now: name -> ``[S]`` (detached copies)."""
        if self.coefficients is None:
            return {}
        c = self.coefficients.detach().reshape(self.members, -1)
        return {n: c[:, i].clone() for i, n in enumerate(self.coefficient_names)}

    @property
    def compiled(self) -> bool:
        """Whether the term losses are compiled now (``compile=True``, or ``"auto"`` decided to)."""
        return self.step_runner.compiled

    @compiled.setter
    def compiled(self, value: bool) -> None:  # takes effect at the next _build_loss_fns, as before
        self.step_runner.compiled = value

    def try_compile(self) -> float:
        """Compile the term losses now and warm them up (``compile="auto"`` decided to); if compilation
        fails, warn and go on eagerly. Returns the seconds spent."""
        def compile_now() -> float:
            self.step_runner.build(True)
            return self.warmup()

        seconds, failed = compile_or_fall_back(compile_now, lambda: self.step_runner.build(False))
        if failed is not None and self.compile_decision is not None:
            self.compile_decision.update(compiled=False, failed=failed)
        return seconds

    def term_losses(self, indices: Optional[Sequence[Optional[Tensor]]] = None) -> list[Tensor]:
        """Unweighted losses of every term, each ``[S]`` (``[1]`` for a single network)."""
        return self.loss_functions(self.parts.loss_params, self.coefficients, indices)

    def warmup(self) -> float:
        """Compile (when ``compile=True``) and capture (``step_mode="cuda_graph"``) every graph training
        will use, outside the timed epochs: one per distinct mini-batch size. Returns the seconds spent."""
        return self.step_runner.warmup()

    def term_gradients(self, losses: Sequence[Tensor]) -> Tensor:
        """One backward per term: ``G[S, K, P]`` with row ``(s, k)`` = grad of member ``s``'s term ``k``
        (zeros where a term does not depend on a parameter); weights and schedule are left alone."""
        return self.backward.term_gradients(losses)

    def step(self, indices: Optional[Sequence[Optional[Tensor]]] = None, *, update: Optional[bool] = None,
             shard_weights: Optional[Tensor] = None) -> Tensor:
        """One optimizer step: term losses, the weighted backward, the optimizer. Returns the detached
        term losses ``[S, K]`` in a buffer the next step overwrites.

        The weights update when the backward's gate says so (the first mini-batch of every ``tau``-th
        epoch): decided on the host in ``step_mode="eager"``, on the device otherwise (then every tensor
        this reads or writes keeps its address across calls, so a CUDA graph can capture it).
        ``update``: force (``True``) or skip (``False``) the weight update without advancing the
        schedule (host gate only). Distributed: ``indices`` are into this rank's shard and
        ``shard_weights`` ``[K]`` its shares of the step's points (default: the whole shard, see
        :meth:`BatchLayout.local <fastpinn.data_parallel.BatchLayout.local>`); the losses returned are the
        global ones.

        A closure optimizer (``torch.optim.LBFGS``; eager step mode) gets a closure that recomputes the
        term losses and the weighted gradient at the current parameters (:func:`fastpinn.optim.closure_step`):
        the weights may update only in its first call of a step (the gate decides and advances once per step,
        as for Adam), so every further call differentiates the same weighted loss. The named ``"lbfgs"``
        runs one L-BFGS per ensemble member in lock step (:class:`~fastpinn.lockstep.LockstepOptimizer`), so a
        member equals its single run; a user's closure optimizer over all of ``theta[S, P]`` makes the members
        share its line search. The losses returned are those of the closure's first call: at the parameters the step started
        from, as for any optimizer (later calls may be rejected line-search trials)."""
        if shard_weights is None and indices is None and self.world_size > 1:
            shard_weights = self.batches.local([None] * len(self.problem.terms))[1]
        if self.stages.closure:
            closure_step(self.optimizer, self.backward, lambda: self.term_losses(indices), update=update,
                         traces=self.parts.traces, shard_weights=shard_weights)
        else:
            losses = self.term_losses(indices)
            self.backward(losses, update=update, traces=self.parts.traces, shard_weights=shard_weights)
            self.stages.step()  # a fused Adam's kernel called directly (fastpinn.optim.DirectAdamStep)
        if self.attention is not None:  # the point weights follow this step's residuals (eq. 9-10)
            for k, (r, index) in self.loss_functions.residuals.items():
                self.attention.update(k, r, index)
            self.loss_functions.residuals.clear()
        return self.backward.losses

    def state_tensors(self) -> list[Tensor]:
        """Every device tensor a training step mutates besides the optimizer's state: the parameters, the
        trainable coefficients and the weighted backward's state (snapshotted around CUDA-graph capture)."""
        coefficients = [] if self.coefficients is None else [self.coefficients]
        return [self.theta] + coefficients + self.backward.state_tensors()

    def epoch_batches(self, advance: bool = True) -> list[list[Optional[Tensor]]]:
        """Per step of the coming epoch, the global point indices of each term (``None``: all points).
        ``advance=False`` leaves the shuffling generator untouched (for the warm-up)."""
        return self.batches.epoch_batches(self.parts.batch_generator if advance else None)
