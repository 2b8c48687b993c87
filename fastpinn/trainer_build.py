"""A trainer's composed parts, checked and built from the :class:`~fastpinn.Trainer`'s arguments.

:class:`TrainerParts` is everything ``Trainer(...)`` assembles before it can train: the checked settings,
the problem on its device (sharded for data parallelism, :mod:`fastpinn.data_parallel`) and its batch layout,
the network and its flat parameters (:mod:`fastpinn.params`), the trainable coefficients, the optimizer
stages (:mod:`fastpinn.optim`), the public weighted backward, pointwise attention, the NTK traces, the
resampler and every term's loss function (:mod:`fastpinn.term_losses`), and the weight watcher. The
Trainer takes these parts as its attributes and wires the ones that call back into it (how its step runs,
what a checkpoint holds). A bad argument is a one-line ``ValueError`` naming it.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .backward import WeightedBackward
from .data_parallel import BatchLayout, data_parallel_layout, shard_problem, world_group
from .errors import DeviceUnavailableError
from .network import MLP
from .ntk import traces_function
from .optim import SchedulerFactory, Stage, StageRunner, build_stage_optimizer
from .params import coefficient_parameter, training_parameters
from .problem import Problem
from .rba import ResidualAttention
from .resampling import Resampling, training_resampler
from .schemes import DN, Scheme
from .schemes.aggregators import check_closure_optimizer
from .term_losses import TermLosses, derivative_method_choices
from .threads import ThreadSetting, resolve_threads
from .validation import check_choice, check_int, check_rate
from .weight_watch import WeightWatch
from .weighter import first_update_for

__all__ = ["TrainerParts", "STEP_MODES", "check_device", "OptimizerFactory"]

STEP_MODES = ("eager", "device", "cuda_graph")

OptimizerFactory = Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]


def check_device(device: torch.device) -> None:
    """:class:`DeviceUnavailableError` (one line) if ``device`` is CUDA and this machine has none."""
    if device.type == "cuda" and not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU was found"
        raise DeviceUnavailableError(f"device {str(device)!r} was requested but CUDA is not available ({why}, torch "
                                     f"{torch.__version__}); use device='cpu'")


class TrainerParts:
    """The parts a :class:`~fastpinn.Trainer` composes, built from its arguments (documented there, with
    their defaults).

    The Trainer holds them as ``trainer.parts``; the public ones are its attributes of the same name too
    (``flat``, ``leaves``, ``loss_params``, ``shard_ranges``, ``batch_generator``, ``ntk_generator`` and
    ``traces`` it reads through ``parts``).
    """

    def __init__(
        self,
        problem: Problem,
        scheme: Optional[Scheme],
        *,
        network: Optional[MLP],
        optimizer: Union[OptimizerFactory, torch.optim.Optimizer, None],
        lr: float,
        device: Union[str, torch.device, None],
        dtype: torch.dtype,
        derivative_method: str,
        eval_every: int,
        backend: str,
        batch_seed: Optional[int],
        compile: bool,
        step_mode: str,
        coefficient_lr: Optional[float],
        threads: ThreadSetting,
        update_schedule: str,
        attention: Optional["ResidualAttention"],
        distributed: Optional[bool],
        overlap: bool,
        stages: Optional[Sequence[Stage]],
        lr_scheduler: Optional[SchedulerFactory],
        watch: Union[bool, WeightWatch],
        resampling: Union[Resampling, Sequence[Resampling], None],
    ) -> None:
        if not isinstance(problem, Problem):
            raise ValueError(f"problem must be a fastpinn Problem, got {type(problem).__name__}")
        self.eval_every = check_int("eval_every", eval_every, minimum=1)
        check_rate("lr", lr)
        check_rate("coefficient_lr", coefficient_lr, optional=True)
        self.step_mode = check_choice("step_mode", step_mode, STEP_MODES)
        self.method = check_choice("derivative_method", derivative_method, derivative_method_choices())
        if not (isinstance(compile, bool) or compile == "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        check_device(self.device)
        if step_mode == "cuda_graph" and self.device.type != "cuda":
            raise ValueError(f"step_mode='cuda_graph' needs a CUDA device, got device={str(self.device)!r}; "
                             "use step_mode='device' or 'eager' elsewhere")
        resolve_threads(threads if threads != "auto" else None)  # validate now, decide at train()
        self.threads: ThreadSetting = threads
        self.dtype = dtype
        self.problem = problem.to(self.device, dtype)
        self.rank, self.world_size = data_parallel_layout(distributed)
        if self.world_size > 1 and step_mode == "cuda_graph":
            raise ValueError("step_mode='cuda_graph' is not supported with distributed training; use 'eager' or 'device'")
        # The global batch layout (points N, batch size, batches per epoch of every term): identical on every rank.
        layout = [(t.n_points, t.batch_size, t.n_batches) for t in self.problem.terms]
        self.shard_ranges = [(0, t.n_points) for t in self.problem.terms]
        if self.world_size > 1:
            self.problem, self.shard_ranges = shard_problem(self.problem, self.rank, self.world_size)
            if threads == "auto":  # ranks share the node's cores: keep the launcher's setting (torchrun: OMP_NUM_THREADS)
                self.threads = None
        self.batches = BatchLayout(layout, self.shard_ranges, self.world_size, dtype, self.device)
        self.steps_per_epoch = self.batches.steps_per_epoch
        # beta = 0.99 as `fastpinn train` uses: at 0.9 the Burgers weights collapse (docs/weights.md)
        self.scheme = DN(beta=0.99) if scheme is None else scheme
        self.members = 1 if problem.ensemble is None else problem.ensemble
        self.net = network if network is not None else self.problem.network(dtype=dtype, device=self.device)
        if not isinstance(self.net, nn.Module):
            raise ValueError(f"network must be a fastpinn.MLP or a torch.nn.Module, got {type(self.net).__name__}")
        self.net.to(device=self.device, dtype=dtype)
        self.flat, self.leaves, self.loss_params = training_parameters(self.net, self.problem.ensemble)
        self.coefficients: Optional[nn.Parameter] = coefficient_parameter(
            self.problem.coefficients.values(), self.problem.ensemble, dtype, self.device)
        self.coefficient_names = list(self.problem.coefficients)
        blocks = [self.flat] + ([] if self.coefficients is None else [self.coefficients])
        if stages is not None and (optimizer is not None or lr_scheduler is not None):
            raise ValueError("pass stages= or optimizer=/lr_scheduler=, not both (each Stage takes its optimizer "
                             "and lr_scheduler)")
        if stages is None:
            stages = [Stage(optimizer if optimizer is not None else "adam", lr_scheduler=lr_scheduler)]
        elif isinstance(stages, Stage):
            stages = [stages]
        self.stages = StageRunner(stages, lambda stage: build_stage_optimizer(
            stage, blocks, self.leaves, lr=lr, coefficient_lr=coefficient_lr, step_mode=step_mode))
        if self.stages.any_closure:  # refused now, not when an L-BFGS stage starts after the Adam epochs
            check_closure_optimizer(self.scheme, "a closure optimizer (L-BFGS)")
        self.update_schedule = update_schedule
        # The shuffling generator lives on the training device so a mini-batch permutation needs no host copy.
        self.batch_generator = torch.Generator(device=self.device).manual_seed(
            problem.seeds[0] if batch_seed is None else batch_seed)
        self.compile_policy: Union[bool, str] = compile
        self.backward = WeightedBackward(
            self.leaves + ([] if self.coefficients is None else [self.coefficients]), self.scheme,
            problem.term_names, reference=problem.reference_term, adaptive=problem.adaptive, members=self.members,
            steps_per_epoch=self.steps_per_epoch, first_update=first_update_for(update_schedule, self.scheme),
            gate="host" if step_mode == "eager" else "device", backend=backend, flat=blocks,
            shared_graph=False,  # set by StepRunner.build: True where terms share one evaluation
            process_group=world_group() if self.world_size > 1 else None, overlap=overlap)
        self.weighter = self.backward.weighter
        self._setup_attention(attention)
        self.traces: Optional[Callable[[], Tensor]] = None
        #: Draws the NTK subsample (its state is in the checkpoint, so a resume draws the same points);
        #: ``None`` when the scheme reads no traces.
        self.ntk_generator: Optional[torch.Generator] = None
        if self.weighter.reads == "traces":
            if self.world_size > 1:
                raise ValueError("NTK schemes are not supported with distributed training (the traces need all "
                                 "points on one rank); use DN, MA, ID, PINN or a loss-based scheme")
            self.ntk_generator = torch.Generator(device=self.device).manual_seed(self.problem.seeds[0] + 7919)
            self.traces = traces_function(self.problem, self.net, self.flat, self.scheme, self.ntk_generator,
                                          coefficients=self.coefficients is not None)
        # Before the loss functions: it gives the resampled terms their own point tensors, which they read.
        self.resampler = training_resampler(resampling, self.problem, world_size=self.world_size,
                                            step_mode=self.step_mode,
                                            attended=() if self.attention is None else self.attention.terms)
        tick = time.perf_counter()
        self.loss_functions = TermLosses(
            self.problem, self.net, self.method, loss_params=self.loss_params, leaves=self.leaves,
            coefficient_names=self.coefficient_names, coefficients=self.coefficients, device=self.device,
            dtype=dtype, attention=self.attention,
            own_evaluation=() if self.resampler is None else tuple(self.resampler.specs),
            tune_batch=self.batches.local(self.batches.epoch_batches(None)[0])[0] if self.method == "tune" else None)
        #: Seconds spent tuning the derivative methods (``derivative_method="tune"``), reported by the first warm-up.
        self.tune_seconds = time.perf_counter() - tick if derivative_method == "tune" else 0.0
        self.derivative_methods: dict[str, str] = self.loss_functions.methods
        if not isinstance(watch, (bool, WeightWatch)):
            raise ValueError(f"watch must be True, False or a fastpinn.weight_watch.WeightWatch, got {watch!r}")
        self.watch: Optional[WeightWatch] = WeightWatch() if watch is True else (watch or None)

    def _setup_attention(self, attention: Optional[ResidualAttention]) -> None:
        self.attention = attention
        if attention is None:
            return
        attention.check_training(n_points=[t.n_points for t in self.problem.terms], world_size=self.world_size,
                                 closure=self.stages.any_closure, compiled=self.compile_policy is True,
                                 step_mode=self.step_mode)
        attention.reset(self.members, self.dtype, self.device)
        self.compile_policy = False  # its loss records residuals ("auto" never compiles it)
