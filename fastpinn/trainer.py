"""The training loop: points -> network -> derivatives -> loss terms -> weighted backward -> optimizer step.

A step is the term losses, the public :class:`~fastpinn.WeightedBackward` (on a weight-update step one
backward per term into ``G[S, K, P]`` and the fused statistics and EMA on the device; between updates one
backward of ``sum_j lam_j L_j``) and the optimizer step (or a stage's closure optimizer, :mod:`fastpinn.optim`)
-- the same pieces a user's own loop calls (the Trainer's public step methods, :mod:`fastpinn.trainer_step`; its
checkpoint methods are :mod:`fastpinn.trainer_state`'s). Per-epoch losses and weights are written into device buffers
and read back only every ``eval_every`` epochs, where the callbacks run (the weight watcher among them).

The side jobs are parts the Trainer composes (checked and built from its arguments by
:mod:`fastpinn.trainer_build`): the mini-batch layout and data parallelism
(:mod:`fastpinn.data_parallel`), how the step runs -- compiled or not, captured in CUDA graphs or not, and
the warm-up (:mod:`fastpinn.step_runner`, over :mod:`fastpinn.compile_policy` and :mod:`fastpinn.cuda_graph`),
the optimizers and stages (:mod:`fastpinn.optim`), what a checkpoint holds (:mod:`fastpinn.trainer_state`)
and its file format (:mod:`fastpinn.checkpoint`), resampling (:mod:`fastpinn.resampling`), the records of a
call (:mod:`fastpinn.history`), the best-seen state and the NaN roll-back (:mod:`fastpinn.divergence`),
keep-best, patience, progress and periodic checkpoints (:mod:`fastpinn.callbacks`) and the weight watcher
(:mod:`fastpinn.weight_watch`).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from . import compile_policy
from .callbacks import Callback, train_callbacks
from .checkpoint import CHECKPOINT_FORMAT
from .compile_policy import (AUTO_COMPILE_MIN_SPEEDUP, AUTO_COMPILE_PROBE_EPOCHS, AUTO_COMPILE_WARMUP_SECONDS,
                             decide_compile)
from .cuda_graph import fresh_optimizer_state
from .divergence import BestSeen, boundary_decision, locate_nonfinite, snapshot
from .errors import CheckpointError, CorruptCheckpointError, DeviceUnavailableError, NonFiniteError
from .evaluation import evaluate_on_rank0, predict_points, reference_error, reference_tensors
from .history import History, TrainingLog, rel_l2_error
from .network import MLP
from .optim import SchedulerFactory, Stage
from .problem import Problem
from .rba import ResidualAttention
from .resampling import Resampling
from .schemes import Scheme
from .trainer_build import STEP_MODES, OptimizerFactory, TrainerParts, check_device
from .trainer_state import TrainerCheckpoints, TrainerState
from .step_runner import StepRunner
from .trainer_step import TrainerStep
from .term_losses import DERIVATIVE_METHODS, derivative_method_choices
from .threads import ThreadSetting, use_threads
from .validation import check_int, check_optional_int
from .weight_watch import WeightWatch

# History, the errors, the checkpoint format and the compile constants live in their own modules; they
# are re-exported here so code written against fastpinn.trainer keeps working.
__all__ = ["Trainer", "History", "NonFiniteError", "CheckpointError", "CorruptCheckpointError",
           "DeviceUnavailableError", "rel_l2_error", "CHECKPOINT_FORMAT", "STEP_MODES", "DERIVATIVE_METHODS",
           "derivative_method_choices", "check_device", "fresh_optimizer_state", "AUTO_COMPILE_PROBE_EPOCHS",
           "AUTO_COMPILE_MIN_SPEEDUP", "AUTO_COMPILE_WARMUP_SECONDS"]

EvalCallback = Callable[["Trainer", int, dict[str, Any]], None]


class Trainer(TrainerStep, TrainerCheckpoints):
    """Train a :class:`~fastpinn.problem.Problem` with any weighting scheme.

    Args:
        problem: the problem (points ``[N, d]``, or ``[S, N, d]`` for an ensemble of ``S`` seeds).
        scheme: any registered scheme, e.g. ``PINN()``, ``MA(...)``, ``ID(...)``, ``DN(...)`` (default
            ``DN(beta=0.99)``, as ``fastpinn train``).
        network: optional network (default ``problem.network(...)``): a :class:`~fastpinn.MLP` (an
            ensemble must match the problem), or any ``nn.Module`` mapping points ``[M, d]`` to
            ``[M, out]`` point by point (single-network problems; its derivatives use ``torch.func`` or
            autograd). A module's trainable parameters are moved into one flat tensor
            (:func:`fastpinn.params.flatten_parameters`), so ``G`` rows and the optimizer see one vector.
        optimizer: a ``torch.optim.Optimizer`` factory taking the parameter list (``[theta]``, plus the
            trainable coefficients), or an optimizer already built on ``network.parameters()`` (default fused
            Adam, ``lr``). Any ``torch.optim`` optimizer, closure optimizers included (``torch.optim.LBFGS``:
            see :meth:`step`).
        lr: learning rate of the default Adam.
        stages: instead of ``optimizer``, a sequence of :class:`fastpinn.Stage` run in order, e.g.
            ``[Stage("adam", epochs=N, lr=1e-3), Stage("lbfgs", iterations=M)]`` (Adam, then L-BFGS; see
            :mod:`fastpinn.optim`). A run stopped in any stage resumes there; one :meth:`train` call (default
            length: to the end of the last stage, if it has one) gives one History across stages
            (``History.extra["stages"]``). The last stage continues if more epochs are asked for.
        lr_scheduler: a ``torch.optim.lr_scheduler`` factory taking the optimizer, e.g. ``lambda opt:
            torch.optim.lr_scheduler.ExponentialLR(opt, 0.999)``, stepped once per epoch (after its last
            step) and saved in the checkpoint. With ``stages``, give each :class:`~fastpinn.Stage` its own.
        device, dtype: where and in which precision to train (float32 like the paper, or float64).
        derivative_method: ``"auto"``, ``"jet"``, ``"func"``, ``"autograd"`` (see
            :func:`fastpinn.derivatives.derivatives`), or ``"tune"``: time every applicable method on each
            term's own points on this device (:func:`fastpinn.derivatives.fastest_method`, which also
            checks they agree) and use the fastest per term. The choice is cached per network shape,
            device, dtype, term and batch size, its cost is reported in ``History.warmup_seconds``, and
            :attr:`derivative_methods` says what was picked.
        eval_every: epochs between evaluations, finiteness checks and log reads (the only host syncs).
        backend: op backend for the statistics and the weight update.
        batch_seed: seed of the mini-batch shuffling (default: the problem's first seed).
        update_schedule: ``"fastpinn"`` (default: weight updates at epochs 0, tau, 2 tau, ...) or
            ``"authors"`` (as the authors' TensorFlow scripts: epochs tau - 1, 2 tau - 1, ... without bias
            correction, 0, tau, ... with it); see :data:`fastpinn.weighter.UPDATE_SCHEDULES`.
        compile: ``True``: compile each term's loss (derivatives + residual, forward and backward) with
            ``torch.compile``, one graph per term, in a warm-up before the first epoch reported apart
            (``History.warmup_seconds``). Results equal the eager step's to rounding. ``"auto"``: probe a
            few eager epochs of each :meth:`train` call, then compile only if it pays
            (:mod:`fastpinn.compile_policy`); :attr:`compile_decision` records the numbers.
        step_mode: how a training step runs (results agree to rounding in every mode):

            - ``"eager"``: the weight-update decision comes from the host's epoch counter (a plain int,
              so it needs no sync); statistics and EMA run only at update epochs.
            - ``"device"``: the capturable step, run eagerly. The decision ``step % (tau * steps_per_epoch)
              == 0`` is made on the device from a step counter tensor; statistics run every step and the
              EMA is masked off between updates. No Python branch depends on training state.
            - ``"cuda_graph"``: the ``"device"`` step captured once per mini-batch shape in a CUDA graph
              and replayed (CUDA only; the optimizer must be capturable, the default Adam is). Capture
              happens in the warm-up (``History.warmup_seconds``), which leaves the training state as it
              found it.
        coefficient_lr: learning rate of the problem's trainable coefficients (``problem.coefficients``,
            inverse problems) in the default Adam (default ``lr``). The coefficients are parameters like
            the network's: their gradients are part of ``G`` rows and weighted the same way.
        attention: pointwise residual-based attention (:class:`fastpinn.rba.ResidualAttention`,
            Anagnostopoulos et al. 2024) for some terms: their loss becomes ``mean_i (lam_i r_i)^2`` and the
            point weights follow the residual after every step. Combines with any ``scheme`` (which still
            weights whole terms); eager or device step, not compiled or captured.
        threads: torch CPU threads during :meth:`train`: ``"auto"`` (default; see :mod:`fastpinn.threads`:
            the cores idle right now, at least 1, or ``$FASTPINN_THREADS``), an integer, or ``None`` to
            leave torch's setting alone. The previous setting is restored after ``train()``; the count
            used is in ``History.extra["threads"]``.
        distributed: data parallelism over the points with ``torch.distributed`` (launch with ``torchrun``;
            how the points and batches are split: :mod:`fastpinn.data_parallel`): ``None`` (default) when a
            process group is initialized with more than one rank, ``True`` (requires one), ``False`` (train
            alone even under ``torchrun``, e.g. a sweep over ranks). ``W`` ranks train what one process trains
            on the same points, to rounding. Eager and ``"device"`` step modes.
        overlap: with ``distributed``, overlap the gradient all-reduces with the backward passes
            (:class:`~fastpinn.WeightedBackward`'s ``overlap``; same results). Default ``False``.
        resampling: a :class:`fastpinn.Resampling` (or a list, one per term): periodic redraws, RAR or RAD of a
            term's points every so many epochs (:mod:`fastpinn.resampling`); the points and the resampling
            generators are in the checkpoint. Not with ``distributed``; RAR not with ``step_mode="cuda_graph"``.
        watch: ``True`` (default): watch the loss weights (:class:`fastpinn.weight_watch.WeightWatch`: a
            collapsing, runaway or useless weight, skipped updates), reported once each at evaluation
            boundaries and in ``History.extra["weight_warnings"]``; a ``WeightWatch`` to set its thresholds;
            ``False``: no watching.
    """

    def __init__(
        self,
        problem: Problem,
        scheme: Optional[Scheme] = None,
        *,
        network: Optional[MLP] = None,
        optimizer: Union[OptimizerFactory, torch.optim.Optimizer, None] = None,
        lr: float = 1e-3,
        device: Union[str, torch.device, None] = None,
        dtype: torch.dtype = torch.float32,
        derivative_method: str = "auto",
        eval_every: int = 100,
        backend: str = "auto",
        batch_seed: Optional[int] = None,
        compile: bool = False,
        step_mode: str = "eager",
        coefficient_lr: Optional[float] = None,
        threads: ThreadSetting = "auto",
        update_schedule: str = "fastpinn",
        attention: Optional["ResidualAttention"] = None,
        distributed: Optional[bool] = None,
        overlap: bool = False,
        stages: Optional[Sequence[Stage]] = None,
        lr_scheduler: Optional[SchedulerFactory] = None,
        watch: Union[bool, WeightWatch] = True,
        resampling: Union[Resampling, Sequence[Resampling], None] = None,
    ) -> None:
        #: The checked settings and the composed parts (:mod:`fastpinn.trainer_build`); the public ones are
        #: this trainer's attributes too.
        self.parts = p = TrainerParts(
            problem, scheme, network=network, optimizer=optimizer, lr=lr, device=device, dtype=dtype,
            derivative_method=derivative_method, eval_every=eval_every, backend=backend, batch_seed=batch_seed,
            compile=compile, step_mode=step_mode, coefficient_lr=coefficient_lr, threads=threads,
            update_schedule=update_schedule, attention=attention, distributed=distributed, overlap=overlap,
            stages=stages, lr_scheduler=lr_scheduler, watch=watch, resampling=resampling)
        self.eval_every, self.step_mode, self.method, self.threads = p.eval_every, p.step_mode, p.method, p.threads
        self.device, self.dtype, self.update_schedule = p.device, p.dtype, p.update_schedule
        self.compile_policy: Union[bool, str] = p.compile_policy
        #: This process's rank and the number of ranks training one model together (0 and 1 alone).
        self.rank, self.world_size = p.rank, p.world_size
        self.problem = p.problem
        #: Which points every step trains on (globally and on this rank).
        self.batches, self.steps_per_epoch = p.batches, p.steps_per_epoch
        #: ``S``, the ensemble members trained at once (1 for a single network).
        self.scheme, self.members, self.net = p.scheme, p.members, p.net
        #: The problem's trainable coefficients (inverse problems): ``[C]`` (``[S, C]`` for an ensemble)
        #: in ``problem.coefficients`` order, or ``None``.
        self.coefficients, self.coefficient_names = p.coefficients, p.coefficient_names
        #: The optimizer stages, the one training is in and its lr scheduler (:mod:`fastpinn.optim`).
        self.stages = p.stages
        #: The public weighted backward this trainer's step is built on (owns G, the Weighter, the gate).
        self.backward, self.weighter = p.backward, p.weighter
        self.attention = p.attention
        self.resampler = p.resampler
        #: Every term's loss function (derivative method chosen or tuned, compiled or not).
        self.loss_functions = p.loss_functions
        #: term name -> derivative method its loss uses.
        self.derivative_methods: dict[str, str] = p.derivative_methods
        #: The weight watcher every train() call runs (``None``: not watching); one per trainer, so a
        #: finding is reported once however many calls train.
        self.watch: Optional[WeightWatch] = p.watch
        self.epoch = 0
        self._reference: Optional[tuple[Tensor, Tensor]] = None
        #: What ``compile="auto"`` measured and decided in the last :meth:`train` call (``None`` otherwise).
        self.compile_decision: Optional[dict[str, Any]] = None
        #: How the step runs: compiled or not, captured or not, and the warm-up (:mod:`fastpinn.step_runner`).
        self.step_runner = StepRunner(
            lambda indices: self.step(indices), self.term_losses, self.loss_functions, self.backward,
            leaves=p.leaves, epoch_batches=lambda: self.epoch_batches(advance=False), local=self.batches.local,
            state_tensors=self.state_tensors, optimizer=lambda: self.optimizer, step_mode=self.step_mode,
            device=self.device, compiled=compile is True, pending_warmup=p.tune_seconds)
        self._graphs = self.step_runner.graphs  # the captured steps (the same dict)
        self._stop_requested = False
        self._log: Optional[TrainingLog] = None  # the running train() call's records, for history_so_far()
        self._best = BestSeen(self.device)
        #: What of this trainer a checkpoint holds (:mod:`fastpinn.trainer_state`).
        self.checkpoint_parts = TrainerState(
            problem=self.problem, scheme=self.scheme, net=self.net, leaves=p.leaves, theta=self.theta,
            coefficients=self.coefficients, coefficient_names=self.coefficient_names, dtype=self.dtype,
            update_schedule=self.update_schedule, stages=self.stages, backward=self.backward,
            batch_generator=p.batch_generator, ntk_generator=p.ntk_generator, attention=self.attention,
            best=self._best, resampler=self.resampler, device=self.device, on_points_changed=self._follow_point_counts)

    def _resample(self) -> None:
        """Resample the terms due at this epoch with their residuals under the current parameters."""
        coef = self.loss_functions.coefficient_views(None if self.coefficients is None else self.coefficients.detach())
        self._follow_point_counts(self.resampler.resample_with_network(
            self.epoch, self.net, methods=self.derivative_methods, theta=self.parts.loss_params, coef=coef))

    def _follow_point_counts(self, terms: Sequence[int]) -> None:
        """The batch layout of ``terms`` after their points changed (RAR adds points)."""
        for k in terms:
            t = self.problem.terms[k]
            self.batches.layout[k] = (t.n_points, t.batch_size, t.n_batches)
            self.parts.shard_ranges[k] = self.batches.shard_ranges[k] = (0, t.n_points)

    # ------------------------------------------------------- how the step runs (the step itself: trainer_step)
    def _build_loss_fns(self) -> None:
        """Each term's loss function for the current ``compiled`` setting."""
        self.step_runner.build(self.compiled)

    def _drop_graphs(self) -> None:
        """Forget captured graphs; the next :meth:`warmup` compiles/captures what training will use."""
        self.step_runner.drop_graphs()

    def _run_step(self, indices: list[Optional[Tensor]]) -> Tensor:
        """One step of :meth:`train` in this trainer's ``step_mode``."""
        if self.step_mode == "cuda_graph":
            return self.step_runner.graph_for(indices).replay(indices)
        local, shares = self.batches.local(indices)
        return self.step(local, shard_weights=shares)

    # ---------------------------------------------------------------------------------- evaluation
    def predict(self, X: Union[Tensor, np.ndarray], chunk: int = 65536) -> Tensor:
        """Network output on points ``X[M, d]`` (any float dtype, any device; computed in the trainer's
        dtype on its device): ``[M, out]`` (ensemble: ``[S, M, out]``)."""
        return predict_points(self.net, X, self.problem.coords, self.dtype, self.device, chunk)

    def evaluate(self) -> Tensor:
        """Relative L2 error ``[S]`` on the problem's reference grid (float64)."""
        if self._reference is None:
            self._reference = reference_tensors(self.problem, self.dtype, self.device)
        X, U = self._reference
        return reference_error(self.predict(X), U)

    # ------------------------------------------------------------------------------------- training
    def request_stop(self) -> None:
        """Ask a running :meth:`train` to stop after the current epoch (safe from a signal handler: it only
        sets a flag). ``train`` then checks finiteness and returns the history so far with
        ``History.extra["stopped"] = True``; the trainer is at an epoch boundary, ready to checkpoint.
        Distributed: the ranks stop together at the next evaluation boundary after any rank asked (the
        request travels in the one small all-reduce made there)."""
        self._stop_requested = True

    @property
    def running_log(self) -> Optional[TrainingLog]:
        """Inside a :meth:`train` call: the records of the call so far (``None`` otherwise)."""
        return self._log

    def history_so_far(self) -> History:
        """Inside a :meth:`train` callback: the :class:`History` of the running call up to now."""
        if self._log is None:
            raise RuntimeError("history_so_far() is only available while train() runs (e.g. in its callback)")
        return self._history(self._log, self._log.done)

    def _history(self, log: TrainingLog, n: int, **extra: Any) -> History:
        """The :class:`History` of the first ``n`` epochs of a train() call."""
        info = {"compiled": self.compiled, "compile_decision": self.compile_decision}
        if len(self.stages.stages) > 1:
            info["stages"] = self.stages.describe()
        info.update(self._best.history_extra())
        if self.watch is not None:
            info["weight_warnings"] = self.watch.call_reports()
        info.update(extra)
        return log.history(n, term_names=self.problem.term_names, skipped=self.weighter.skipped.cpu().numpy(),
                           ensemble=self.problem.ensemble, coefficient_names=self.coefficient_names, extra=info)

    @property
    def best(self) -> Optional[dict[str, Tensor]]:
        """The best relative L2 error seen per member (``"rel_l2"`` ``[S]``), its epoch (``"epoch"`` ``[S]``,
        -1 while none was finite) and parameters (``"theta"`` ``[S, P]``); ``None`` before any evaluation."""
        return self._best.state

    def restore_best(self) -> None:
        """Put the parameters with the lowest relative L2 error seen (per member) back into the network
        (the authors' protocol); optimizer and weights stay as they are."""
        self._best.restore_into(self.theta)

    def train(
        self,
        epochs: Optional[int] = None,
        *,
        progress: bool = False,
        callback: Optional[EvalCallback] = None,
        keep_best: bool = False,
        patience: Optional[int] = None,
        callbacks: Sequence[Callback] = (),
    ) -> History:
        """Train for ``epochs`` (default: the problem's; with ``stages`` whose last has a length, to its end)
        and return the :class:`History` of this call.

        At every epoch that is a multiple of ``eval_every`` (counted from the start of training, so a
        resumed run evaluates where an uninterrupted one does) and at the end: a NaN/Inf flag that every
        epoch folds into a device tensor is read (the only host sync), the relative L2 error is measured
        when the problem has a reference, and the callbacks run (:mod:`fastpinn.callbacks`): ``progress``
        (a tqdm bar), the weight watcher (``watch``: what went wrong with the weights, once per term and
        kind), ``callback(trainer, epoch, info)`` (:meth:`history_so_far` gives the history up to there),
        each of ``callbacks`` (objects with ``on_train_begin``/``on_eval``/``on_train_end``; an ``on_eval``
        returning ``True`` stops early), then ``patience`` and ``keep_best``.

        If a loss or the parameters are non-finite, the trainer is restored to the state of the last
        boundary that passed (parameters, optimizer, weights, shuffling, epoch) and
        :class:`NonFiniteError` is raised, naming the term, member and epoch.

        ``keep_best``: at the end, put back the parameters with the lowest relative L2 error seen per member
        (the authors' protocol). ``patience``: stop early when no member's error has improved for
        ``patience`` epochs (checked at evaluations; counted from the last improvement this trainer has
        seen, also in an earlier call or before a resume). The best-seen error and its epoch are always in
        ``History.extra["best_rel_l2"]`` / ``["best_epoch"]`` when the problem has a reference.
        :meth:`request_stop` ends the call after the current epoch (``History.extra["stopped"]``). Runs with
        this trainer's ``threads`` policy (``History.extra["threads"]``).
        """
        if epochs is None:
            end = self.stages.end
            epochs = self.problem.epochs if end is None else end - self.epoch
            if epochs < 1:
                raise ValueError(f"the stages end at epoch {end} and the trainer is at epoch {self.epoch}: "
                                 "pass epochs= to continue in the last stage")
        epochs = check_int("epochs", epochs, minimum=1)
        patience = check_optional_int("patience", patience, minimum=1, hint=" (epochs)")
        if (keep_best or patience is not None) and self.problem.solution is None:
            raise ValueError("keep_best and patience need a problem with a reference solution (rel. L2 error)")
        if self.watch is not None:
            self.watch.progress = bool(progress)
        chain = train_callbacks(progress=progress, watch=self.watch, callback=callback, callbacks=callbacks,
                                patience=patience, keep_best=keep_best)
        with use_threads(self.threads) as n_threads:
            history = self._train(epochs, chain)
        history.extra["threads"] = n_threads
        return history

    def _train(self, epochs: int, callbacks: Sequence[Callback]) -> History:
        log = TrainingLog(epochs, self.members, len(self.problem.terms), len(self.coefficient_names), self.dtype,
                          self.device, warmup_seconds=self.warmup())
        # Set at the eval boundaries by any epoch since the last whose losses are not finite (one check of the
        # rows there, not a few tiny kernels every epoch), or by non-finite parameters.
        nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        # The update schedule follows the host epoch (a host int: no sync), e.g. after a resume.
        self.backward.set_schedule_step(self.epoch * self.steps_per_epoch)
        good, good_done = snapshot(self.state_dict()), 0  # the last state that passed the finiteness check
        probe = compile_policy.AUTO_COMPILE_PROBE_EPOCHS if self.compile_policy == "auto" and not self.compiled else 0
        self.compile_decision = None
        first, done, stopped, early_stopped = 0, epochs, False, False  # first: epoch after the last boundary
        self._log = log
        try:
            for cb in callbacks:
                cb.on_train_begin(self, epochs)
            tick = time.perf_counter()
            for i in range(epochs):
                if probe and i == probe:  # compile="auto": the eager rate of the probe decides
                    log.train_seconds += self._seconds_since(tick)
                    self.compile_decision = decide_compile(probe, log.train_seconds, epochs - i)
                    if self.compile_decision["compiled"]:
                        log.warmup_seconds += self.try_compile()
                    tick = time.perf_counter()
                self._train_epoch(i, log)
                # Distributed: a stop is decided together at the next boundary, so every rank leaves the
                # loop after the same epoch.
                stopped = self._stop_requested and self.world_size == 1
                if not (self.epoch % self.eval_every == 0 or i + 1 == epochs or stopped):
                    continue
                log.train_seconds += self._seconds_since(tick)
                torch.logical_or(nonfinite, ~torch.isfinite(log.losses[first:i + 1]).all(), out=nonfinite)
                diverged, stopped = boundary_decision(nonfinite, self.theta, stopped, self._stop_requested,
                                                      self.world_size)
                if diverged:
                    self._roll_back(log, good, good_done, first, i)
                if stopped and i + 1 < epochs and self.epoch % self.eval_every != 0:
                    # An off-boundary stop: no evaluation, so a resume matches. A stop *at* a boundary
                    # evaluates first, as the uninterrupted run does there (the resumed call starts after it).
                    done = i + 1
                    break
                info = self._evaluate_boundary(log, i)
                good, good_done = snapshot(self.state_dict()), i + 1
                log.done = first = i + 1
                early_stopped = any([cb.on_eval(self, self.epoch, info) for cb in callbacks])  # every one runs
                if stopped or early_stopped:
                    # A callback ending the run here makes it over whether or not a stop was also asked for:
                    # reported as an early stop (nothing left to resume), as the uninterrupted run ends.
                    stopped = stopped and not early_stopped
                    done = i + 1
                    break
                tick = time.perf_counter()
        except BaseException:
            for cb in callbacks:
                cb.on_train_end(self, None)
            raise
        finally:
            self._log = None
            self._stop_requested = False  # a request ends this call only
        extra: dict[str, Any] = {}
        if stopped:
            extra["stopped"] = True
        if early_stopped:
            extra["early_stopped"] = True
        for cb in callbacks:
            cb.on_train_end(self, extra)
        return self._history(log, done, **extra)

    def _seconds_since(self, tick: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - tick

    def _train_epoch(self, i: int, log: TrainingLog) -> None:
        """Every step of one epoch; its losses (mean over its mini-batches), first weights and
        coefficients go into row ``i`` of the log."""
        if self.resampler is not None and self.resampler.due(self.epoch):
            self._resample()
        if self.stages.begin_epoch(self.epoch):
            self._drop_graphs()  # captured steps hold the previous optimizer (recaptured when next run)
        batches = self.epoch_batches()
        for b, idx in enumerate(batches):
            log.losses[i] += self._run_step(idx)
            if b == 0:
                log.weights[i].copy_(self.backward.weights())
        if len(batches) > 1:
            log.losses[i] /= len(batches)
        if self.coefficients is not None:
            log.coefficients[i].copy_(self.coefficients.detach().reshape(self.members, -1))
        self.stages.end_epoch()
        self.epoch += 1

    def _roll_back(self, log: TrainingLog, good: dict[str, Any], good_done: int, first: int, i: int) -> None:
        """Restore the last finite state and raise :class:`NonFiniteError` naming what diverged first."""
        term, member, at, where = locate_nonfinite(log.losses[first:i + 1], self.epoch - (i + 1 - first),
                                                   self.theta.reshape(self.members, -1), self.epoch,
                                                   self.problem.term_names)
        self.load_state_dict(good)
        history = self._history(log, good_done, diverged=True)
        raise NonFiniteError(
            f"training diverged: {where} is not finite (scheme {self.scheme!r}); restored the last "
            f"finite state, epoch {self.epoch}; lower the learning rate or check the problem's terms",
            term=term, member=member, epoch=at, last_good_epoch=self.epoch, history=history)

    def _evaluate_boundary(self, log: TrainingLog, i: int) -> dict[str, Any]:
        """What the callbacks see at a boundary; the error is measured and recorded when there is a reference."""
        info: dict[str, Any] = {"losses": log.losses[i].cpu().numpy(), "weights": log.weights[i].cpu().numpy()}
        if self.problem.solution is not None:
            err = evaluate_on_rank0(self.evaluate, self.rank, self.world_size, self.members, self.device)
            err = err.cpu().numpy()
            log.record_evaluation(self.epoch, err)
            info["rel_l2"] = err
            self._best.track(err, self.theta.reshape(self.members, -1), self.epoch)
        return info
