"""Optimizers for the Trainer: named optimizers, a sequence of stages, closure optimizers, lr schedules.

A :class:`Stage` is one optimizer for a number of epochs (``Stage("adam", epochs=N, lr=1e-3)``,
``Stage("lbfgs", iterations=M)``); a Trainer given ``stages=[...]`` runs them in order (DeepXDE's usual
recipe: Adam, then L-BFGS), switching at the epoch where one ends. One epoch is one optimizer step per
mini-batch; a named L-BFGS stage makes one L-BFGS iteration per step (``max_iter=1``), so for full-batch
training ``iterations=M`` is ``M`` epochs -- the History, evaluations and checkpoints stay per epoch and a
run can be stopped and resumed between any two iterations. Each stage's optimizer is built fresh when
training reaches its first epoch (:class:`StageRunner`); the checkpoint holds the stage and its optimizer's
state, so a run stopped in any stage resumes there.

Closure optimizers (those whose ``step`` requires a ``closure``, e.g. ``torch.optim.LBFGS``) are detected
from their signature (:func:`needs_closure`); the Trainer then evaluates the term losses and the weighted
backward inside the closure (see :meth:`fastpinn.Trainer.step`).

The learning-rate schedules of the command line (``--lr-schedule``) are parsed by
:func:`parse_lr_schedule`; the Trainer takes any ``torch.optim.lr_scheduler`` factory.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import torch
import torch.optim.optimizer as torch_optimizer_module  # its global step hooks

from .lockstep import LockstepOptimizer
from .schemes.aggregators import check_closure_optimizer
from .validation import check_choice, check_number, check_optional_int

if TYPE_CHECKING:
    from .backward import WeightedBackward

__all__ = ["Stage", "SERIAL_ADAM_ELEMENTS", "OPTIMIZER_NAMES", "OPTIMIZER_CHOICES", "LR_SCHEDULE_FORMS", "LBFGS_DEFAULTS", "needs_closure",
           "build_named_optimizer", "build_stage_optimizer", "closure_step", "check_scheduler", "parse_lr_schedule",
           "run_stages", "StageRunner", "DirectAdamStep"]

OptimizerFactory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]

#: Optimizers a :class:`Stage` may name.
OPTIMIZER_NAMES = ("adam", "lbfgs", "sgd")
#: What ``--optimizer`` takes: one optimizer for the whole run, or Adam then L-BFGS.
OPTIMIZER_CHOICES = ("adam", "lbfgs", "adam+lbfgs")
#: The forms of ``--lr-schedule``.
LR_SCHEDULE_FORMS = ("none", "exp:GAMMA", "step:STEP:GAMMA", "cosine")
#: A named L-BFGS: one iteration per step (so an epoch is an iteration), a strong-Wolfe line search (the
#: step length 1 without one diverges easily on PINN losses) of up to 24 evaluations (torch's default
#: ``max_eval`` is ``1.25 max_iter``, which for one iteration leaves the line search no evaluation), 50
#: correction pairs.
LBFGS_DEFAULTS = {"lr": 1.0, "max_iter": 1, "max_eval": 25, "history_size": 50, "line_search_fn": "strong_wolfe"}


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` requires a closure (e.g. ``torch.optim.LBFGS``)."""
    try:
        params = inspect.signature(optimizer.step).parameters
    except (TypeError, ValueError):  # a C-level step: no signature, assume the usual optional closure
        return False
    closure = params.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


@dataclass
class Stage:
    """One optimizer for part of a run.

    Args:
        optimizer: a name from :data:`OPTIMIZER_NAMES` (``"adam"``: the Trainer's fused Adam; ``"lbfgs"``:
            ``torch.optim.LBFGS`` with :data:`LBFGS_DEFAULTS`, one per member for an ensemble, see
            :class:`~fastpinn.lockstep.LockstepOptimizer`; ``"sgd"``), or a factory taking the parameter
            list (``[theta]``, plus the trainable coefficients) and returning any ``torch.optim`` optimizer.
        epochs, iterations: the stage's length in epochs (the two names are the same count: ``iterations``
            reads better for L-BFGS); at most one; neither: the stage runs to the end of training (last
            stage only).
        lr: the learning rate of a named optimizer (default: the Trainer's ``lr`` for Adam/SGD, 1 for L-BFGS).
        options: more keyword arguments of a named optimizer (e.g. ``{"history_size": 100}``).
        lr_scheduler: a ``torch.optim.lr_scheduler`` factory for this stage's optimizer, stepped once per epoch.
    """

    optimizer: Union[str, OptimizerFactory, torch.optim.Optimizer] = "adam"
    epochs: Optional[int] = None
    iterations: Optional[int] = None
    lr: Optional[float] = None
    options: dict = field(default_factory=dict)
    lr_scheduler: Optional[SchedulerFactory] = None

    def __post_init__(self) -> None:
        if isinstance(self.optimizer, str):
            check_choice("Stage optimizer", self.optimizer, OPTIMIZER_NAMES)
        elif not (callable(self.optimizer) or isinstance(self.optimizer, torch.optim.Optimizer)):
            raise ValueError(f"Stage optimizer must be one of {OPTIMIZER_NAMES} or a factory of a torch.optim "
                             f"optimizer, got {type(self.optimizer).__name__}")
        check_optional_int("Stage epochs", self.epochs, minimum=1)
        check_optional_int("Stage iterations", self.iterations, minimum=1)
        if self.epochs is not None and self.iterations is not None:
            raise ValueError(f"a Stage takes epochs or iterations (the same count), not both; got epochs="
                             f"{self.epochs}, iterations={self.iterations}")
        if self.lr is not None:
            check_number("Stage lr", self.lr, minimum=0.0, low_open=True)
        if self.lr_scheduler is not None and not callable(self.lr_scheduler):
            raise ValueError(f"Stage lr_scheduler must be a factory taking the optimizer, got "
                             f"{type(self.lr_scheduler).__name__}")

    @property
    def length(self) -> Optional[int]:
        """Epochs of this stage (``None``: until training ends)."""
        return self.epochs if self.epochs is not None else self.iterations

    @property
    def name(self) -> str:
        """The optimizer's name (a factory's ``__name__``, an instance's class name)."""
        if isinstance(self.optimizer, str):
            return self.optimizer
        if isinstance(self.optimizer, torch.optim.Optimizer):
            return type(self.optimizer).__name__
        return getattr(self.optimizer, "__name__", type(self.optimizer).__name__)


def build_named_optimizer(name: str, params: list[torch.Tensor], lr: float,
                          options: dict[str, Any]) -> torch.optim.Optimizer:
    """L-BFGS or SGD of a :class:`Stage` on ``params`` (Adam is the Trainer's own, with its fused options)."""
    if name == "lbfgs":
        options = {**LBFGS_DEFAULTS, "lr": lr, **options}
        if params[0].dim() == 2:  # an ensemble theta[S, P]: one L-BFGS per member, else they share a line search
            return LockstepOptimizer(params, lambda rows: torch.optim.LBFGS(rows, **options))
        return torch.optim.LBFGS(params, **options)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, **options)
    raise ValueError(f"build_named_optimizer builds {('lbfgs', 'sgd')}, got {name!r}")


def build_stage_optimizer(stage: Stage, blocks: list[torch.Tensor], leaves: Sequence[torch.Tensor], *, lr: float,
                          coefficient_lr: Optional[float], step_mode: str) -> torch.optim.Optimizer:
    """A stage's optimizer on a trainer's parameter blocks, checked against that trainer.

    ``blocks``: the flat network parameters ``theta``, then the trainable coefficients if any (what a factory
    receives); ``leaves``: the network's trainable tensors (a user's optimizer may hold these instead of
    ``theta``); ``lr``: the default learning rate (a stage's own ``lr`` wins); ``coefficient_lr``: the
    coefficients' in the default Adam (``None``: ``lr``); ``step_mode``: the trainer's.
    """
    optimizer, lr = stage.optimizer, lr if stage.lr is None else stage.lr
    flat = blocks[0]
    if isinstance(optimizer, torch.optim.Optimizer):
        built = optimizer
    elif optimizer == "adam":
        # Fused Adam: one kernel over the flat theta (elementwise, so ensemble members stay independent).
        # Capturable keeps its step count on the device, which a CUDA graph needs.
        groups: list[dict[str, Any]] = [{"params": [flat]}]
        if len(blocks) > 1:
            groups.append({"params": [blocks[1]], "lr": lr if coefficient_lr is None else coefficient_lr})
        built = torch.optim.Adam(groups, **{"lr": lr, "fused": True, "capturable": step_mode == "cuda_graph",
                                            **stage.options})
    elif isinstance(optimizer, str):  # L-BFGS: one group (it takes no per-group options), step length 1
        built = build_named_optimizer(optimizer, blocks, 1.0 if optimizer == "lbfgs" and stage.lr is None else lr,
                                      stage.options)
    else:
        built = optimizer(blocks)
    if not isinstance(built, torch.optim.Optimizer):
        raise ValueError(f"optimizer must build a torch.optim.Optimizer, got {type(built).__name__}")
    # A user's optimizer must step this network's flat parameters, else training silently does nothing.
    held = [p for g in built.param_groups for p in g["params"]]
    if not any(p is flat or any(p is leaf for leaf in leaves) for p in held):
        raise ValueError("optimizer must hold the network's parameters (network.theta / network.parameters()); "
                         f"it holds {len(held)} other tensor(s) of shapes {[tuple(p.shape) for p in held][:4]}")
    if step_mode == "cuda_graph" and not all(g.get("capturable", False) for g in built.param_groups):
        raise ValueError("optimizer must be built with capturable=True for step_mode='cuda_graph' "
                         "(e.g. torch.optim.Adam(params, fused=True, capturable=True))")
    if needs_closure(built) and step_mode != "eager":
        raise ValueError(f"a closure optimizer ({type(built).__name__}) re-evaluates the loss several times "
                         f"per step, which the weight-update gate of step_mode={step_mode!r} cannot "
                         "follow: use step_mode='eager'")
    return built


#: Below this many parameters :class:`DirectAdamStep` runs the fused Adam kernel on one thread. The CPU kernel
#: splits even a few thousand elements over the intra-op threads, and after a step's serial work (a tiny problem's
#: backward) waking them cost far more than the kernel: the tiny 1-D Poisson's 5,251 parameters took 14 us on one
#: thread against 0.45-6 ms of CPU on two (a loaded 2-core Xeon; the whole step is ~0.6 ms). In a hot loop two
#: threads win from ~16k elements on (5,251: 4.6 vs 15.6 us; 16,384: 10.2 vs 8.1; 32,768: 18.8 vs 12.0): the
#: threshold is torch's own grain for elementwise kernels, where the gain is a few microseconds at most
#: (``bench/results/tiny-step-cpu-intel-xeon-2c-2026-12-06.md``). Results do not depend on it (elementwise).
SERIAL_ADAM_ELEMENTS = 32768


class DirectAdamStep:
    """``optimizer.step()`` of a plain fused ``torch.optim.Adam``, made by calling its fused kernel directly.

    The same kernel calls with the same arguments as ``torch.optim.Adam.step`` (per parameter group: the step
    counts ``+= 1``, then ``torch._fused_adam_``), so the parameters are bit-identical; what it skips is
    torch's per-call Python around them (the profiler's record_function, the hook loops, ``_init_group``, the
    grouping by device and dtype, the graph-capture check): right after a backward that took 95 of the 125 us
    of the tiny 1-D Poisson's Adam step (1,000 steps, 1 thread, CPU time), about a tenth of its step.
    Anything else goes through ``optimizer.step()``: another optimizer, a first step (it creates the state),
    AMSGrad, capturable or differentiable Adam, tensor hyper-parameters, step hooks, a ``step`` wrapped on the
    instance (an lr scheduler does that), a parameter without a gradient or of another device or dtype.
    Fewer than :data:`SERIAL_ADAM_ELEMENTS` parameters: the kernel runs on one thread (then the caller's count is
    restored).
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        #: Whether the optimizer may take the direct path at all (its type; the rest is checked every step).
        self.eligible = type(optimizer) is torch.optim.Adam and hasattr(torch, "_fused_adam_")

    def __call__(self) -> None:
        plan = self._plan() if self.eligible else None
        if plan is None:
            self.optimizer.step()
            return
        threads = torch.get_num_threads()
        serial = threads > 1 and sum(p.numel() for entry in plan for p in entry[1]) < SERIAL_ADAM_ELEMENTS
        if serial:  # elementwise: the same floats on any thread count
            torch.set_num_threads(1)
        try:
            with torch.no_grad():
                for group, params, grads, avgs, sqs, steps in plan:
                    torch._foreach_add_(steps, 1)
                    beta1, beta2 = group["betas"]
                    torch._fused_adam_(params, grads, avgs, sqs, [], steps, amsgrad=False, lr=group["lr"],
                                       beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                                       maximize=group["maximize"], grad_scale=None, found_inf=None)
        finally:
            if serial:
                torch.set_num_threads(threads)

    def _plan(self) -> Optional[list[tuple]]:
        """Per parameter group ``(group, params, grads, exp_avgs, exp_avg_sqs, steps)``, or ``None`` when this
        step must go through ``optimizer.step()``."""
        opt = self.optimizer
        hooks = torch_optimizer_module
        if ("step" in opt.__dict__ or opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks
                or hooks._global_optimizer_pre_hooks or hooks._global_optimizer_post_hooks):
            return None
        plan = []
        for group in opt.param_groups:
            if not (group.get("fused") and not group.get("capturable") and not group.get("differentiable")
                    and not group.get("amsgrad") and not group.get("decoupled_weight_decay")
                    and not any(isinstance(group[k], torch.Tensor) for k in ("lr", "weight_decay", "eps"))
                    and not any(isinstance(b, torch.Tensor) for b in group["betas"])):
                return None
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            first = params[0]
            states = [opt.state.get(p) for p in params]
            if any(not st or "exp_avg" not in st for st in states) or any(
                    p.grad.is_sparse or p.device != first.device or p.dtype != first.dtype or p.is_complex()
                    for p in params):
                return None
            plan.append((group, params, [p.grad for p in params], [st["exp_avg"] for st in states],
                         [st["exp_avg_sq"] for st in states], [st["step"] for st in states]))
        return plan


def closure_step(optimizer: torch.optim.Optimizer, backward: "WeightedBackward",
                 term_losses: Callable[[], list[torch.Tensor]], *, update: Optional[bool],
                 traces: Optional[Callable[[], torch.Tensor]], shard_weights: Optional[torch.Tensor]) -> None:
    """One step of a closure optimizer (e.g. ``torch.optim.LBFGS``): its closure recomputes ``term_losses()``
    and the weighted gradient (``backward``) at the current parameters.

    The loss weights follow the outer step's schedule: they may update (``update``) only in the closure's
    first call of a step; every further call (line search, inner iterations) uses ``update=False``, so it
    differentiates the same weighted loss ``sum_j lam_j L_j`` the optimizer minimises in this step. The
    closure returns that loss per member ``[S]`` to a :class:`~fastpinn.lockstep.LockstepOptimizer` (one
    optimizer per ensemble member), else summed over the members. ``backward.losses`` is left holding the
    losses of the first call (at the parameters the step started from).
    """
    check_closure_optimizer(backward.weighter.scheme, type(optimizer).__name__)  # M-ConFIG: no closure
    calls = 0
    first = backward.losses.clone()

    def closure() -> torch.Tensor:
        nonlocal calls
        losses = term_losses()
        backward(losses, update=update if calls == 0 else False, traces=traces, shard_weights=shard_weights)
        if calls == 0:
            first.copy_(backward.losses)
        calls += 1
        # Per-member losses for one optimizer per member, else their sum (the members' losses are independent).
        return backward.weighted_loss if isinstance(optimizer, LockstepOptimizer) else backward.weighted_loss.sum()

    optimizer.step(closure)
    backward.losses.copy_(first)


def check_scheduler(scheduler: Any) -> Any:
    """``scheduler`` if it can be stepped once per epoch with no argument (not ``ReduceLROnPlateau``)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise ValueError("lr_scheduler ReduceLROnPlateau needs a metric per step; the Trainer steps schedulers "
                         "once per epoch with no argument: use another torch.optim.lr_scheduler")
    if not (callable(getattr(scheduler, "step", None)) and callable(getattr(scheduler, "state_dict", None))):
        raise ValueError(f"lr_scheduler must build a torch.optim.lr_scheduler (with step() and state_dict()), got "
                         f"{type(scheduler).__name__}")
    return scheduler


def run_stages(stages: Sequence[Stage]) -> list[tuple[int, Optional[int]]]:
    """``(first epoch, end epoch or None)`` of each stage; only the last may be open-ended."""
    if not stages:
        raise ValueError("stages must hold at least one Stage")
    out, start = [], 0
    for i, stage in enumerate(stages):
        if not isinstance(stage, Stage):
            raise ValueError(f"stages[{i}] must be a fastpinn.Stage, got {type(stage).__name__}")
        if isinstance(stage.optimizer, torch.optim.Optimizer) and len(stages) > 1:
            raise ValueError(f"stages[{i}]: a stage among several needs a name or a factory (it is built when it "
                             "starts, and again on a resume), not an optimizer instance")
        if stage.length is None and i + 1 < len(stages):
            raise ValueError(f"stages[{i}] has no length (epochs= or iterations=); only the last stage may run "
                             "to the end of training")
        end = None if stage.length is None else start + stage.length
        out.append((start, end))
        start = end if end is not None else start
    return out


class StageRunner:
    """The optimizer (and lr scheduler) of the stage training is in, built when the stage starts.

    ``build(stage)`` makes a stage's optimizer (the Trainer's: it knows the parameters, the fused Adam and the
    step mode, and checks the result). Every stage is built once at construction, so a bad stage is refused
    before training rather than when it starts.
    """

    def __init__(self, stages: Sequence[Stage], build: Callable[[Stage], torch.optim.Optimizer]) -> None:
        self.stages = list(stages)
        #: ``(first epoch, end epoch or None)`` per stage.
        self.bounds = run_stages(self.stages)
        self._build = build
        #: Whether any stage's optimizer needs a closure.
        self.any_closure = any(needs_closure(build(stage)) for stage in self.stages[1:])  # refused now, not later
        self.index = -1
        self.optimizer: torch.optim.Optimizer
        self.scheduler: Any = None
        #: Whether the current optimizer's ``step`` needs a closure.
        self.closure = False
        self.enter(0)
        self.any_closure = self.any_closure or self.closure

    @property
    def end(self) -> Optional[int]:
        """The epoch the last stage ends (``None``: open-ended)."""
        return self.bounds[-1][1]

    def stage_at(self, epoch: int) -> int:
        """The stage epoch ``epoch`` trains in (the last one past the end)."""
        for i, (_, end) in enumerate(self.bounds):
            if end is None or epoch < end:
                return i
        return len(self.stages) - 1

    def enter(self, index: int) -> None:
        """Build stage ``index``'s optimizer (fresh state) and its scheduler."""
        stage = self.stages[index]
        self.optimizer = self._build(stage)
        self.closure = needs_closure(self.optimizer)
        self._step = DirectAdamStep(self.optimizer)
        self.scheduler = None if stage.lr_scheduler is None else check_scheduler(stage.lr_scheduler(self.optimizer))
        self.index = index

    def begin_epoch(self, epoch: int) -> bool:
        """Enter the stage of ``epoch`` if training is not in it yet; whether it changed."""
        index = self.stage_at(epoch)
        if index == self.index:
            return False
        self.enter(index)
        return True

    def step(self) -> None:
        """One step of the current optimizer (not a closure optimizer's), by :class:`DirectAdamStep`."""
        if self._step.optimizer is not self.optimizer:  # replaced from outside
            self._step = DirectAdamStep(self.optimizer)
        self._step()

    def end_epoch(self) -> None:
        """Step the scheduler (once per epoch)."""
        if self.scheduler is not None:
            self.scheduler.step()

    def describe(self) -> list[dict[str, Any]]:
        """Per stage: its optimizer's name and its epochs ``[first, end)`` (``end`` ``None``: open-ended)."""
        return [{"optimizer": s.name, "epochs": [a, b]} for s, (a, b) in zip(self.stages, self.bounds)]

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.index, "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": None if self.scheduler is None else self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue in the stored stage with its optimizer (and scheduler) state."""
        index = int(state.get("stage", 0))  # files written before stages: the one optimizer
        if not 0 <= index < len(self.stages):
            raise ValueError(f"the state is in optimizer stage {index}, this trainer has {len(self.stages)} stage(s)")
        if index != self.index:
            self.enter(index)
        self.optimizer.load_state_dict(state["optimizer"])
        stored = state.get("lr_scheduler")
        if (stored is None) != (self.scheduler is None):
            raise ValueError(f"the state {'has no' if stored is None else 'has an'} lr scheduler for stage {index}; "
                             f"this trainer {'has one' if stored is None else 'has none'}")
        if self.scheduler is not None:
            self.scheduler.load_state_dict(stored)


def parse_lr_schedule(spec: str, epochs: int) -> Optional[SchedulerFactory]:
    """The scheduler factory of a ``--lr-schedule`` value (:data:`LR_SCHEDULE_FORMS`; ``cosine`` anneals to 0
    over ``epochs``), ``None`` for ``"none"``; ``ValueError`` (one line) for anything else."""
    text = str(spec).strip()
    parts = text.split(":")
    bad = ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULE_FORMS)} (GAMMA in (0, 1], STEP an "
                     f"integer >= 1), got {spec!r}")
    try:
        if text == "none":
            return None
        if text == "cosine":
            return lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(epochs), 1))
        if parts[0] == "exp" and len(parts) == 2:
            gamma = _gamma(parts[1])
            return lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
        if parts[0] == "step" and len(parts) == 3:
            step = int(parts[1])
            gamma = _gamma(parts[2])
            if step < 1:
                raise bad
            return lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=gamma)
    except ValueError:
        raise bad from None
    raise bad


def _gamma(text: str) -> float:
    gamma = float(text)
    if not (math.isfinite(gamma) and 0 < gamma <= 1):
        raise ValueError(text)
    return gamma
