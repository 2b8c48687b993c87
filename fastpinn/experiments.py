"""The paper's experiments: one run (:func:`train_run`), the tables' configurations (:data:`TABLES`), the
resumable sweep that reproduces a table (:func:`reproduce`), the table writer (:func:`format_table`) and
the few-minute CPU demo (:func:`demo`).

A *configuration* (:class:`RunConfig`) is everything that decides a run's numbers: problem and its sizes,
scheme and its parameters, seeds, epochs, learning rate, dtype and device type. All seeds of a
configuration train as one ensemble (``problems.get(name, seed=[0, 1, ...])``) in one batched step.

Tables (configurations as in the paper; tau = 10, no bias correction unless stated):

* ``table1`` Burgers, ``table2`` Poisson, ``table3`` Allen-Cahn: PINN; MA-, ID- and DN-PINN at
  beta = 0.9 and 0.99.
* ``table4``: DN-PINN with p = 1, 2 and inf at beta = 0.9 and 0.99 on the three problems (18 rows).
* ``fig12``: DN-PINN with and without bias correction at beta = 0.9, 0.99, 0.999 on the three problems
  (Poisson for 5,000 epochs, the others as in their tables).

Runs are resumable: :func:`train_run` checkpoints periodically and on SIGINT/SIGTERM and continues from a
checkpoint of the same configuration; :func:`reproduce` checks what it reuses.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import io
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from . import _io, paper_numbers, runs
from .problem import Problem
from .schemes import SCHEME_NAMES, Scheme, scheme_from_name

__all__ = [
    "PROBLEMS", "SCHEMES", "DTYPES", "SIZE_KEYS", "RunConfig", "Entry", "TableSpec", "TABLES", "Row",
    "train_run", "plan_run_dir", "resumable_epoch", "is_complete", "Interrupted", "reproduce", "format_table", "table_rows", "demo", "DEMO_DEFAULTS",
]

PROBLEMS = ("burgers", "poisson", "allen_cahn", "poisson1d", "burgers_inverse", "kovasznay")
#: The other form a problem name takes: a function in the user's own file, ``path/to/file.py:make_problem``.
USER_PROBLEM_FORM = "FILE.py:FUNCTION"
SCHEMES = SCHEME_NAMES
DTYPES = {"float32": torch.float32, "float64": torch.float64}
BACKENDS = ("auto", "cpp", "triton", "torch")
#: Problem-size keyword arguments the command line may override (only those a problem takes).
SIZE_KEYS = ("n_pde", "n_bc", "n_ic", "batch_size")

Log = Callable[[str], None]


def _p_to_json(p: float) -> Union[float, str]:
    return "inf" if math.isinf(p) else float(p)


def _p_from_json(p: Union[float, str]) -> float:
    return math.inf if p in ("inf", "Infinity") else float(p)


def is_user_problem(name: str) -> bool:
    """Whether ``name`` names a function in a Python file (``path/to/file.py:make_problem``)."""
    file, sep, func = str(name).rpartition(":")
    return bool(sep) and file.endswith(".py") and func.isidentifier()


def _user_file(name: str) -> Path:
    return Path(str(name).rpartition(":")[0])


def _load_user_factory(name: str) -> Callable[..., Problem]:
    """The function ``name`` names, imported from its file (a fresh module per call: edits are seen)."""
    import importlib.util

    path, func = _user_file(name), str(name).rpartition(":")[2]
    if not path.is_file():
        raise ValueError(f"problem file {str(path)!r} does not exist (problem {name!r}; form {USER_PROBLEM_FORM})")
    spec = importlib.util.spec_from_file_location(f"fastpinn_user_problem_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's file is a bad argument, reported once
        raise ValueError(f"problem file {str(path)!r} failed to import ({type(exc).__name__}: {exc})") from exc
    factory = getattr(module, func, None)
    if not callable(factory):
        raise ValueError(f"problem file {str(path)!r} has no function {func!r}")
    return factory


def _problem_factory(name: str) -> Callable[..., Problem]:
    from .problems import burgers_inverse, kovasznay, paper, poisson1d

    if is_user_problem(name):
        return _load_user_factory(name)
    factories = dict(paper.PROBLEMS, poisson1d=poisson1d, burgers_inverse=burgers_inverse, kovasznay=kovasznay)
    if name not in factories:
        raise ValueError(f"problem must be one of {', '.join(PROBLEMS)} or {USER_PROBLEM_FORM} (a function of your "
                         f"own file returning a fastpinn.Problem), got {name!r}")
    return factories[name]


def _file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------ one configuration
@dataclass
class RunConfig:
    """One training configuration (what ``fastpinn train`` runs, and one row of a table).

    ``seeds``: the seeds trained; ``ensemble``: train them as an ensemble problem (always for more than
    one seed; ``fastpinn train --seeds 1`` gives a one-member ensemble, ``--seed 0`` a single network).
    ``epochs``: ``None`` for the problem's own (the paper's protocol).
    """

    problem: str
    scheme: str = "dn"
    beta: float = 0.9
    tau: int = 10
    p: float = 2.0
    bias_correction: bool = False
    ma_form: str = "paper"
    alpha: Optional[float] = None  # LRA / GradNormW: their papers' EMA parameter (None: 0.9)
    reduce: str = "sum"  # GradNormW: "sum" (the paper) or "mean"
    temperature: float = 0.1  # SoftAdapt / ReLoBRaLo softmax temperature
    seeds: tuple[int, ...] = (0,)
    ensemble: bool = False
    epochs: Optional[int] = None
    lr: float = 1e-3
    device: str = "cpu"
    dtype: str = "float32"
    backend: str = "auto"
    eval_every: int = 100
    problem_kwargs: dict = field(default_factory=dict)
    compile: Union[bool, str] = False
    step_mode: str = "eager"
    derivative_method: str = "auto"
    #: Fidelity options for comparing with the authors' TensorFlow code (defaults: fastpinn's protocol).
    update_schedule: str = "fastpinn"
    init: str = "glorot_normal"
    keep_best: bool = False
    patience: Optional[int] = None
    #: Pointwise residual-based attention (Anagnostopoulos et al. 2024) on the reference (PDE) term:
    #: ``None`` or ``{"gamma": ..., "eta": ...}``.
    attention: Optional[dict] = None
    #: Seed of the mini-batch shuffling, one permutation shared by all members (``None``: the first seed,
    #: as for any ensemble). A chunk of a sweep's seeds keeps the whole configuration's, so its members
    #: draw the batches they would draw in the one ensemble (``reproduce(seeds_per_run=...)``).
    batch_seed: Optional[int] = None

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        self.problem_kwargs = {k: v for k, v in dict(self.problem_kwargs).items() if v is not None}
        if is_user_problem(self.problem):  # absolute, so the run directory can be used from anywhere
            self.problem = f"{_user_file(self.problem).resolve()}:{str(self.problem).rpartition(':')[2]}"
        if len(self.seeds) > 1:
            self.ensemble = True

    # ------------------------------------------------------------------------------- validation
    def validate(self) -> "RunConfig":
        """Raise ``ValueError`` (one line, naming the bad value) for anything a run would reject."""
        factory = _problem_factory(self.problem)  # a clear ValueError for an unknown name or a bad file
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        self.scheme_object()  # beta, tau, p, ma_form, alpha, ...: the library's own checks
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        if any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be >= 0, got {list(self.seeds)}")
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int)
                                        or self.epochs < 1):
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise ValueError(f"eval_every must be an integer >= 1, got {self.eval_every!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        from .trainer import DERIVATIVE_METHODS, STEP_MODES

        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise ValueError(f"compile must be true, false or 'auto', got {self.compile!r}")
        if self.step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {', '.join(STEP_MODES)}, got {self.step_mode!r}")
        if self.derivative_method not in DERIVATIVE_METHODS:
            raise ValueError(f"derivative_method must be one of {', '.join(DERIVATIVE_METHODS)}, "
                             f"got {self.derivative_method!r}")
        from .network import INITS
        from .weighter import UPDATE_SCHEDULES

        if self.update_schedule not in UPDATE_SCHEDULES:
            raise ValueError(f"update_schedule must be one of {', '.join(UPDATE_SCHEDULES)}, "
                             f"got {self.update_schedule!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.batch_seed is not None and (isinstance(self.batch_seed, bool) or not isinstance(self.batch_seed, int)
                                            or self.batch_seed < 0):
            raise ValueError(f"batch_seed must be None or an integer >= 0, got {self.batch_seed!r}")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError(f"patience must be an integer >= 1 (epochs), got {self.patience!r}")
        try:
            dev = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}") from exc
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        from .trainer import check_device as _check_device

        _check_device(dev)  # DeviceUnavailableError: CUDA asked for, not there
        if self.step_mode == "cuda_graph" and dev.type != "cuda":
            raise ValueError(f"step_mode 'cuda_graph' needs a CUDA device, got device {self.device!r}")
        accepted = inspect.signature(factory).parameters
        if is_user_problem(self.problem) and "seed" not in accepted and (self.ensemble or self.seeds != (0,)):
            raise ValueError(f"problem {self.problem!r} takes no seed argument, so it trains one network with seed 0; "
                             f"got seeds {list(self.seeds)}")
        for key, value in self.problem_kwargs.items():
            if key not in accepted:
                raise ValueError(f"problem {self.problem!r} has no size {key!r} (option --{key.replace('_', '-')})")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        return self

    def scheme_object(self) -> Scheme:
        return scheme_from_name(self.scheme, beta=self.beta, tau=self.tau, p=self.p,
                                bias_correction=self.bias_correction, ma_form=self.ma_form, alpha=self.alpha,
                                reduce=self.reduce, temperature=self.temperature)

    # ------------------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict:
        d = asdict(self)
        d["p"] = _p_to_json(self.p)
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in names}
        if "p" in kw:
            kw["p"] = _p_from_json(kw["p"])
        if "seeds" in kw:
            kw["seeds"] = tuple(kw["seeds"])
        return cls(**kw)

    def identity(self, epochs: Optional[int] = None) -> dict:
        """What decides the numbers of a run; two runs with equal identities are interchangeable.

        The backend, evaluation cadence and exact device index are left out (same numbers up to
        rounding); scheme parameters the scheme does not read are left out too.
        """
        d: dict[str, Any] = {
            "problem": self.problem, "problem_kwargs": dict(sorted(self.problem_kwargs.items())),
            **({"problem_file_sha256": _file_digest(_user_file(self.problem))} if is_user_problem(self.problem)
               and _user_file(self.problem).is_file() else {}),
            "scheme": self.scheme, "seeds": list(self.seeds), "ensemble": bool(self.ensemble),
            "epochs": self.resolved_epochs() if epochs is None else int(epochs),
            "lr": float(self.lr), "dtype": self.dtype,
            "device_type": torch.device(self.device).type,
        }
        if self.scheme in ("lra", "gradnorm-w"):  # alpha replaces beta
            sch = self.scheme_object()
            d.update(alpha=float(sch.alpha), tau=int(self.tau), bias_correction=bool(self.bias_correction))
            if self.scheme == "gradnorm-w":
                d["reduce"] = self.reduce
        elif self.scheme != "pinn":
            d.update(beta=float(self.beta), tau=int(self.tau), bias_correction=bool(self.bias_correction))
        if self.scheme == "dn":
            d["p"] = _p_to_json(self.p)
        if self.scheme == "ma":
            d["ma_form"] = self.ma_form
        # Fidelity options only when set, so that runs written before they existed keep their identity.
        if self.update_schedule != "fastpinn" and self.scheme != "pinn":
            d["update_schedule"] = self.update_schedule
        if self.init != "glorot_normal":
            d["init"] = self.init
        if self.keep_best:
            d["keep_best"] = True
        if self.patience is not None:
            d["patience"] = int(self.patience)
        if self.batch_seed is not None and self.batch_seed != self.seeds[0]:  # else: the default shuffling
            d["batch_seed"] = int(self.batch_seed)
        if self.attention is not None:
            d["attention"] = {k: float(v) for k, v in sorted(self.attention.items())}
        return d

    def resolved_epochs(self) -> int:
        """``epochs``, or the problem's default (the paper's protocol) when it is ``None``."""
        if self.epochs is not None:
            return int(self.epochs)
        factory = _problem_factory(self.problem)
        param = inspect.signature(factory).parameters.get("epochs")
        if param is not None and isinstance(param.default, int):
            return int(param.default)
        return int(self.build_problem().epochs)  # a user's factory without an epochs argument

    # --------------------------------------------------------------------------------- building
    def build_problem(self) -> Problem:
        seed: Union[int, list[int]] = list(self.seeds) if self.ensemble else self.seeds[0]
        from .problems import get

        if not is_user_problem(self.problem):
            return get(self.problem, seed=seed, **self.problem_kwargs)
        factory = _problem_factory(self.problem)
        takes_seed = "seed" in inspect.signature(factory).parameters

        def one(s: int) -> Problem:
            made = factory(seed=s, **self.problem_kwargs) if takes_seed else factory(**self.problem_kwargs)
            if not isinstance(made, Problem):
                raise ValueError(f"problem {self.problem!r} must return a fastpinn.Problem, got {type(made).__name__}")
            # the network is seeded from problem.seeds: make it the run's seed
            return made if made.seeds == (s,) else dataclasses.replace(made, seeds=(s,))

        if self.ensemble:
            from .problem import stack

            return stack([one(s) for s in self.seeds])
        return one(self.seeds[0])

    def describe(self, *, show_p: bool = False) -> str:
        """Short human-readable name, e.g. ``DN-PINN (β=0.99, p=1)`` (``p`` shown when not 2, or always
        with ``show_p``)."""
        if self.scheme == "pinn":
            return "PINN"
        if self.scheme in ("lra", "gradnorm-w"):
            sch = self.scheme_object()
            extra = ", mean" if self.scheme == "gradnorm-w" and self.reduce == "mean" else ""
            return f"{repr(sch).split('(')[0]} (α={sch.alpha:g}, τ={self.tau}{extra})"
        parts = [f"β={self.beta:g}"]
        if self.scheme == "dn" and (self.p != 2.0 or show_p):
            parts.append(f"p={'∞' if math.isinf(self.p) else f'{self.p:g}'}")
        if self.tau != 10:
            parts.append(f"τ={self.tau}")
        if self.bias_correction:
            parts.append("bias corr.")
        if self.scheme == "ma" and self.ma_form != "paper":
            parts.append(f"form={self.ma_form}")
        if self.update_schedule != "fastpinn":
            parts.append(f"{self.update_schedule} schedule")
        return f"{self.scheme.upper()}-PINN ({', '.join(parts)})"


def preflight_backend(cfg: RunConfig) -> None:
    """Fail early (``ValueError``, one line) when a dynamic scheme needs a compiled op that is missing."""
    if cfg.scheme == "pinn" or cfg.backend == "torch":
        return
    try:
        from .ops import _ext

        _ext.load()
    except Exception as exc:  # RuntimeError with a rebuild hint, or an import problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"backend {cfg.backend!r} needs the compiled extension fastpinn._C, which is not "
                         f"usable ({first}); pass --backend torch for the pure-PyTorch ops") from exc
    if cfg.backend == "triton":
        try:
            import triton  # noqa: F401
        except ImportError as exc:
            raise ValueError("backend 'triton' needs the triton package; pass --backend torch or auto") from exc


def build_trainer(cfg: RunConfig) -> tuple[Problem, Any]:
    """Validate ``cfg`` and build its problem and :class:`~fastpinn.trainer.Trainer` (``ValueError`` on bad
    input, before anything is trained or written)."""
    from .trainer import Trainer

    cfg.validate()
    preflight_backend(cfg)
    problem = cfg.build_problem()
    network = problem.network(dtype=DTYPES[cfg.dtype], device=cfg.device, init=cfg.init)
    trainer = Trainer(problem, cfg.scheme_object(), network=network, lr=cfg.lr, device=cfg.device,
                      batch_seed=cfg.batch_seed,
                      dtype=DTYPES[cfg.dtype], eval_every=cfg.eval_every, backend=cfg.backend, compile=cfg.compile,
                      step_mode=cfg.step_mode, derivative_method=cfg.derivative_method,
                      update_schedule=cfg.update_schedule, attention=_attention(cfg, problem))
    return problem, trainer


def _attention(cfg: RunConfig, problem: Problem) -> Any:
    """The run's :class:`~fastpinn.rba.ResidualAttention` on the reference term, or ``None``."""
    if cfg.attention is None:
        return None
    from .rba import ResidualAttention

    extra = set(cfg.attention) - {"gamma", "eta"}
    if extra:
        raise ValueError(f"attention takes gamma and eta, got {sorted(extra)}")
    return ResidualAttention([t.n_points for t in problem.terms], terms=(problem.reference_term,), **cfg.attention)


# -------------------------------------------------------------------------------------- one run
#: Default seconds of training between periodic checkpoints (at most this much work is lost to a kill -9).
CHECKPOINT_SECONDS = 120.0


class Interrupted(Exception):
    """A run stopped by SIGINT/SIGTERM after writing its checkpoint (``signum``, ``checkpoint``, ``epoch``)."""

    def __init__(self, signum: int, checkpoint: Path, epoch: int) -> None:
        import signal

        super().__init__(f"interrupted by {signal.Signals(signum).name} at epoch {epoch}; checkpoint written to "
                         f"{str(checkpoint)!r} (rerun the same command, or add --resume, to continue)")
        self.signum, self.checkpoint, self.epoch = signum, checkpoint, epoch


class _StopOnSignals:
    """While active, SIGINT and SIGTERM ask the trainer to stop after its current epoch (so the run can
    write a checkpoint at an epoch boundary); a second signal interrupts at once. Main thread only."""

    def __init__(self, trainer: Any) -> None:
        self.trainer, self.signum, self._old = trainer, None, {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # second signal: the user insists
            raise KeyboardInterrupt
        self.signum = signum
        self.trainer.request_stop()

    def __enter__(self) -> "_StopOnSignals":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)


def is_complete(run_dir: Union[str, Path], cfg: RunConfig) -> bool:
    """Whether ``run_dir`` holds a finished run (``metrics.json`` written, finished or diverged) of the same
    configuration whose files all check out (:func:`fastpinn.runs.verify_run`)."""
    return runs.verify_run(run_dir, cfg.identity(cfg.resolved_epochs())) is None


def resumable_epoch(run_dir: Union[str, Path], cfg: RunConfig) -> Optional[int]:
    """The epoch of a valid checkpoint of this configuration in ``run_dir`` (an unfinished run to
    continue), else ``None``."""
    path = Path(run_dir) / runs.CHECKPOINT
    if runs.checkpoint_problem(path, cfg.identity(cfg.resolved_epochs())) is not None:
        return None
    from .trainer import Trainer

    return int(Trainer.read_checkpoint(str(path))["epoch"])


def plan_run_dir(cfg: RunConfig, out_dir: Union[str, Path], *, force: bool = False,
                 resume: Optional[bool] = None) -> str:
    """What :func:`train_run` will do in ``out_dir``: ``"reuse"`` (it holds this finished run, every file
    checked), ``"resume"`` (a checkpoint of this configuration) or ``"fresh"``. Raises
    :class:`~fastpinn.runs.RunPathError` for a file in the way, :class:`~fastpinn.runs.RunDirError` for a
    non-empty directory holding something else (without ``force``), ``ValueError`` when ``resume=True``
    finds nothing to resume."""
    out = runs.check_dir_path(out_dir)
    identity = cfg.identity(cfg.resolved_epochs())
    if force or resume is False or not out.is_dir():
        if resume:
            raise ValueError(f"cannot resume in {str(out)!r}: it does not exist")
        return "fresh"
    if runs.verify_run(out, identity) is None:
        return "reuse"
    if resumable_epoch(out, cfg) is not None:
        return "resume"
    ckpt = out / runs.CHECKPOINT
    if ckpt.exists():
        from .trainer import CorruptCheckpointError, Trainer

        try:
            Trainer.read_checkpoint(str(ckpt))
        except CorruptCheckpointError as exc:
            raise CorruptCheckpointError(f"{exc}; pass --force to start afresh") from None
    if resume:
        why = runs.checkpoint_problem(out / runs.CHECKPOINT, identity)
        raise ValueError(f"cannot resume in {str(out)!r}: {why}")
    if runs.is_nonempty_dir(out):
        status = runs.json_status(out / runs.CONFIG)
        what = (f"its {runs.CONFIG} is corrupt" if status == "corrupt" else
                "it holds a run of a different configuration" if status == "ok" else "it is not empty")
        raise runs.RunDirError(f"output directory {str(out)!r} cannot be used: {what}; pass --force to start "
                               "afresh (the old files are replaced once the new run has a checkpoint)")
    return "fresh"


def train_run(cfg: RunConfig, out_dir: Union[str, Path], *, force: bool = False, resume: Optional[bool] = None,
              progress: bool = False, figures: bool = True, prebuilt: Optional[tuple[Problem, Any]] = None,
              command: str = "train", checkpoint_every: Optional[int] = None,
              checkpoint_seconds: Optional[float] = CHECKPOINT_SECONDS, log: Optional[Log] = None) -> dict:
    """Train one configuration in ``out_dir`` (continuing an interrupted run of it) and return the metrics.

    ``resume``: ``None`` (default) continues from a checkpoint of the same configuration if there is one;
    ``True`` requires one (``ValueError`` otherwise); ``False`` starts afresh (needs ``force`` if the
    directory is not empty). A directory that already holds the finished run of this configuration is
    returned as is (``metrics["_reused"]``) unless ``force``.

    Checkpoints (``checkpoint.pt``: trainer state, the run's identity and its history so far) are written
    at the first ``eval_every`` boundary after every ``checkpoint_every`` epochs or ``checkpoint_seconds``
    of training, when SIGINT/SIGTERM arrive (then :class:`Interrupted` is raised), at the last finite
    state of a diverged run, and at the end. Each checkpoint also rewrites ``history.npz`` (just before
    it), so a killed run leaves a consistent pair, or, killed between the two writes, ``history.npz`` one
    checkpoint ahead (the checkpoint embeds its own history, which a resume uses). With ``force`` an earlier run's files stay until the first checkpoint
    of the new one replaces them. ``metrics.json`` comes last: the marker of a finished run. A diverged
    run (:class:`~fastpinn.trainer.NonFiniteError`, re-raised with its ``checkpoint`` set) gets a
    ``metrics.json`` with ``status: "diverged"``, the term, member and epoch, and the checkpoint path.

    Bad configurations raise ``ValueError`` before anything is written; a ``ValueError`` raised *during*
    training is a failure of the run, not of its arguments, and comes out as ``RuntimeError``.
    """
    from .trainer import History, NonFiniteError

    log = log or (lambda s: None)
    out = Path(out_dir)
    identity = cfg.identity(cfg.resolved_epochs())
    ranks = _RunRanks()
    # Rank 0 looks at the directory and decides; the others take its decision (and its error, if any).
    action, start, metrics = ranks.decide(lambda: _plan_and_peek(cfg, out, force=force, resume=resume))
    if action == "reuse":
        log(f"{out}: already holds this finished run; reusing it (--force retrains)")
        return dict(metrics, _reused=True)
    problem, trainer = prebuilt if prebuilt is not None else build_trainer(cfg)  # bad input: before any write
    if ranks.world_size != trainer.world_size:
        raise ValueError(f"the trainer trains on {trainer.world_size} rank(s) but the process group has "
                         f"{ranks.world_size}: build it under the same torch.distributed setup")
    out = ranks.decide(lambda: runs.prepare_run_dir(out, force=force or start is not None))
    ranks.barrier("the run directory barrier")  # the directory exists before any rank reads from it
    epochs = problem.epochs if cfg.epochs is None else cfg.epochs
    previous = None  # the history before this process (resume)
    if start is not None:
        extra = trainer.load_checkpoint(str(out / runs.CHECKPOINT), max_epoch=epochs)
        previous = History.from_dict(extra["history"])
        if previous.epochs != trainer.epoch:
            raise runs.RunDirError(f"{str(out / runs.CHECKPOINT)!r} holds {previous.epochs} epochs of history at "
                                   f"epoch {trainer.epoch}; pass --force to start over")
        _resume_compile_decision(trainer, extra)
        log(f"{out}: resuming from the checkpoint at epoch {trainer.epoch} of {epochs}")
    config = {
        "config": cfg.to_dict(),
        "identity": identity,
        "resolved": {
            "epochs": epochs, "scheme_repr": repr(trainer.scheme), "term_names": problem.term_names,
            "n_params": int(trainer.net.n_params), "depth": problem.depth, "width": problem.width,
            "ensemble": problem.ensemble, "seeds": list(problem.seeds),
            "n_points": {t.name: t.n_points for t in problem.terms},
            "batch_size": {t.name: t.batch_size for t in problem.terms},
            "derivative_methods": dict(trainer.derivative_methods),
            "first_update_epoch": trainer.weighter.first_update,
            "ranks": trainer.world_size,  # data-parallel ranks of the process that wrote this file
        },
        "environment": runs.environment(cfg.device),
        "command": command,
    }
    # A fresh run over an earlier one (--force) leaves the old files until its first checkpoint.
    replacing = ranks.decide(lambda: start is None and runs.is_nonempty_dir(out))
    if not replacing and ranks.lead:
        runs.write_json(out / runs.CONFIG, config)
    state = {"replacing": replacing, "last_epoch": trainer.epoch, "last_time": time.monotonic()}
    ckpt_path = out / runs.CHECKPOINT

    def full(history: Any) -> Any:
        return history if previous is None else previous.concat(history)

    def commit(history: Any) -> None:
        """Checkpoint + history.npz of the run so far (``history``: all epochs up to the trainer's)."""
        # history.npz first: the checkpoint is the commit point, so whoever sees a checkpoint also sees its
        # history (a kill between the two writes leaves history.npz one commit ahead; a resume reads the
        # history embedded in the checkpoint and rewrites history.npz from it).
        if ranks.lead:
            history.save(str(out / runs.HISTORY))
        # Distributed: rank 0 writes, every rank waits on the checkpoint barrier.
        trainer.save_checkpoint(str(ckpt_path), extra={"identity": identity, "history": history.to_dict(),
                                                       "compiled": bool(trainer.compiled)})
        if state["replacing"]:
            if ranks.lead:
                runs.write_json(out / runs.CONFIG, config)
                runs.replace_previous_run(out, keep=(runs.CHECKPOINT, runs.HISTORY, runs.CONFIG))
            state["replacing"] = False
        state["last_epoch"], state["last_time"] = trainer.epoch, time.monotonic()

    def periodic(tr: Any, epoch: int, info: dict) -> None:
        due_epochs = checkpoint_every is not None and epoch - state["last_epoch"] >= checkpoint_every
        due_time = checkpoint_seconds is not None and time.monotonic() - state["last_time"] >= checkpoint_seconds
        if epoch < epochs and ranks.agree(due_epochs or due_time, "the checkpoint decision"):
            commit(full(tr.history_so_far()))

    remaining = epochs - trainer.epoch
    this_call = None  # the history of this process's train() call (its "stopped" is about this process)
    wall0 = time.perf_counter()
    try:
        with _StopOnSignals(trainer) as signals:
            if remaining > 0 and not (previous is not None and previous.extra.get("early_stopped")):
                this_call = trainer.train(remaining, progress=progress and ranks.lead, callback=periodic,
                                          keep_best=cfg.keep_best, patience=cfg.patience)
                history = full(this_call)
            else:  # killed after the last checkpoint (of the end or an early stop), before metrics.json
                history = previous
    except NonFiniteError as exc:
        good = full(exc.history)
        commit(good)
        exc.checkpoint = str(ckpt_path)
        n = len(cfg.seeds)
        diverged = {
            "status": "diverged", "error": str(exc), "diverged_term": exc.term, "diverged_member": exc.member,
            "diverged_epoch": exc.epoch, "last_good_epoch": exc.last_good_epoch, "checkpoint": str(ckpt_path),
            "rel_l2": float("nan"), "rel_l2_mean": float("nan"),
            "rel_l2_sem": float("nan"), "rel_l2_per_seed": [float("nan")] * n, "seeds": list(cfg.seeds),
            "n_seeds": n, "train_seconds": good.train_seconds, "warmup_seconds": good.warmup_seconds,
            "epochs": epochs, "ms_per_epoch": float("nan"), "scheme": cfg.scheme, "device": cfg.device}
        if ranks.lead:
            runs.write_json(out / runs.METRICS, diverged)
        ranks.barrier("the diverged-run barrier")
        raise
    except ValueError as exc:
        raise RuntimeError(f"training failed: {exc}") from exc
    wall = time.perf_counter() - wall0
    if this_call is not None and this_call.extra.get("stopped") and trainer.epoch < epochs:
        commit(history)
        raise Interrupted(signals.signum or 2, ckpt_path, trainer.epoch)
    commit(history)
    figure_files: list[str] = []
    if figures and ranks.lead:  # gradients.png of a data-parallel run: rank 0's shard of the points
        try:
            from . import plots

            figure_files = [p.name for p in plots.run_figures(trainer, history, out, title=cfg.describe())]
        except Exception as exc:  # a plotting problem must not lose a finished training run
            warnings.warn(f"figures were not written: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
    best = [float(v) for v in history.extra.get("best_rel_l2", [])]
    best_mean, best_sem = runs.mean_sem(best) if best else (float("nan"), float("nan"))
    metrics = runs.metrics_from_history(history, scheme=cfg.scheme, device=cfg.device, seeds=cfg.seeds, extra={
        "status": "ok", "problem": cfg.problem, "label": cfg.describe(), "wall_seconds": wall,
        "device_name": config["environment"]["device_name"], "figures": figure_files,
        "derivative_methods": dict(trainer.derivative_methods), "step_mode": cfg.step_mode,
        "compiled": bool(history.extra.get("compiled", False)),
        "compile_decision": history.extra.get("compile_decision"),
        "best_rel_l2_per_seed": best, "best_rel_l2_mean": best_mean, "best_rel_l2_sem": best_sem,
        "best_epoch_per_seed": history.extra.get("best_epoch", []),
        "kept_best": bool(cfg.keep_best), "early_stopped": bool(history.extra.get("early_stopped", False)),
        "resumed_from_epoch": start, "update_schedule": cfg.update_schedule, "init": cfg.init,
        # trainable PDE coefficients (inverse problems): final value per seed
        "coefficients": {n: [float(v) for v in vals] for n, vals in
                         ((n, trainer.coefficient_values()[n].cpu().numpy()) for n in trainer.coefficient_names)},
        "threads": history.extra.get("threads"), "ranks": trainer.world_size,
    })
    if cfg.keep_best and best:
        # The network now holds the best-seen parameters: its error is the best-seen one, per seed.
        metrics.update(rel_l2_per_seed=best, rel_l2=best_mean, rel_l2_mean=best_mean, rel_l2_sem=best_sem)
    if ranks.lead:
        runs.write_json(out / runs.METRICS, metrics)
    ranks.barrier("the end-of-run barrier")  # every rank returns once the run is finished on disk
    return metrics


def _plan_and_peek(cfg: RunConfig, out: Path, *, force: bool, resume: Optional[bool]) -> tuple:
    """``(action, start epoch or None, finished metrics or {})`` of :func:`plan_run_dir` in ``out``."""
    action = plan_run_dir(cfg, out, force=force, resume=resume)
    if action == "reuse":
        return action, None, dict(runs.read_metrics(out) or {})
    return action, resumable_epoch(out, cfg) if action == "resume" else None, {}


class _RunRanks:
    """The ranks of a data-parallel :func:`train_run` (one process: rank 0 of 1, and every method is
    local): rank 0 reads and writes the run directory, decisions it makes reach every rank."""

    def __init__(self) -> None:
        import torch.distributed as dist

        on = dist.is_available() and dist.is_initialized()
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if on else (0, 1)
        self.lead = self.rank == 0

    def decide(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on rank 0, its result (or the exception it raised) on every rank."""
        if self.world_size == 1:
            return fn()
        from .collectives import broadcast_object

        outcome: tuple = (None, None)
        if self.lead:
            try:
                outcome = (fn(), None)
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                outcome = (None, exc)
        value, error = broadcast_object(outcome, "sharing rank 0's view of the run directory")
        if error is not None:
            raise error
        return value

    def agree(self, flag: bool, what: str) -> bool:
        """``flag`` OR-ed over the ranks (e.g. a checkpoint due by one rank's clock)."""
        if self.world_size == 1:
            return bool(flag)
        from .collectives import agree

        return agree([flag], what)[0]

    def barrier(self, what: str) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            from .collectives import collective

            collective(what, dist.barrier)


def _resume_compile_decision(trainer: Any, extra: dict) -> None:
    """Continue with the compile decision the interrupted run made (compiled and eager steps round
    differently, so re-deciding could break bit-identity with an uninterrupted run)."""
    from .trainer import AUTO_COMPILE_PROBE_EPOCHS

    if trainer.compile_policy != "auto":
        return
    if extra.get("compiled"):
        trainer._try_compile()
        trainer.compile_policy = True
    elif trainer.epoch >= AUTO_COMPILE_PROBE_EPOCHS:
        trainer.compile_policy = False  # the probe already said: stay eager


# ------------------------------------------------------------------------------------------ tables
@dataclass(frozen=True)
class Entry:
    """One configuration of a table: ``key`` names its subdirectory and its paper entry; ``problem`` the
    problem it trains; ``epochs`` a table-specific length (``None``: the problem's)."""

    key: str
    scheme: str
    beta: float = 0.9
    p: float = 2.0
    bias_correction: bool = False
    problem: str = ""
    epochs: Optional[int] = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    problems: tuple[str, ...]
    entries: tuple[Entry, ...]
    note: str = ""

    @property
    def problem(self) -> str:
        """The (first) problem of the table."""
        return self.problems[0]


def _main_entries(problem: str) -> tuple[Entry, ...]:
    out = [Entry("pinn", "pinn", problem=problem)]
    for scheme in ("ma", "id", "dn"):
        for beta in (0.9, 0.99):
            out.append(Entry(f"{scheme}-b{beta:g}", scheme, beta, problem=problem))
    return tuple(out)


_PAPER_PROBLEMS = ("burgers", "poisson", "allen_cahn")
_P_NAME = {1.0: "1", 2.0: "2", math.inf: "inf"}
#: Fig. 12 trains Poisson for 5,000 epochs; Burgers and Allen-Cahn as in their tables.
FIG12_EPOCHS = {"poisson": 5000}

TABLES: dict[str, TableSpec] = {
    "table1": TableSpec("table1", "Table 1: Burgers", ("burgers",), _main_entries("burgers")),
    "table2": TableSpec("table2", "Table 2: Poisson", ("poisson",), _main_entries("poisson")),
    "table3": TableSpec("table3", "Table 3: Allen-Cahn", ("allen_cahn",), _main_entries("allen_cahn")),
    "table4": TableSpec(
        "table4", "Table 4: DN-PINN with L^p norms", _PAPER_PROBLEMS,
        tuple(Entry(f"{prob}/dn-b{b:g}-p{_P_NAME[p]}", "dn", b, p, problem=prob)
              for prob in _PAPER_PROBLEMS for b in (0.9, 0.99) for p in (1.0, 2.0, math.inf)),
        note="As in the paper: DN-PINN, β = 0.9 and 0.99, p = 1, 2, ∞, τ = 10, on the three problems."),
    "fig12": TableSpec(
        "fig12", "Fig. 12: bias correction of DN-PINN", _PAPER_PROBLEMS,
        tuple(Entry(f"{prob}/dn-b{b:g}{'-bc' if bc else ''}", "dn", b, 2.0, bc, problem=prob,
                    epochs=FIG12_EPOCHS.get(prob))
              for prob in _PAPER_PROBLEMS for b in (0.9, 0.99, 0.999) for bc in (False, True)),
        note="As in the paper: DN-PINN with and without bias correction, β = 0.9, 0.99, 0.999, on the three "
             "problems (Poisson for 5,000 epochs). The paper shows this as curves, not numbers."),
}


def table_entries(table: str, problem: Optional[str] = None) -> list[Entry]:
    """The entries :func:`reproduce` runs: all of ``table``'s, only ``problem``'s when it is one of the
    table's problems, or the first problem's entries moved to ``problem`` (keys then name it, and the
    table-specific epochs are dropped) when it is another one."""
    spec = TABLES[table]
    if problem is None:
        return list(spec.entries)
    if problem in spec.problems:
        return [e for e in spec.entries if e.problem == problem]
    first = [e for e in spec.entries if e.problem == spec.problems[0]]
    multi = len(spec.problems) > 1
    return [replace(e, problem=problem, epochs=None,
                    key=f"{problem}/{e.key.split('/', 1)[1]}" if multi else e.key) for e in first]


@dataclass
class Row:
    """One line of a reproduced table."""

    key: str
    label: str
    n_seeds: int
    rel_l2_mean: Optional[float]
    rel_l2_sem: Optional[float]
    train_seconds: Optional[float]
    status: str = "ok"
    reused: bool = False
    overhead_pct: Optional[float] = None
    paper: paper_numbers.PaperEntry = field(default_factory=paper_numbers.PaperEntry)
    best_rel_l2_mean: Optional[float] = None
    best_rel_l2_sem: Optional[float] = None

    @property
    def agrees(self) -> Optional[bool]:
        """Our mean within the combined standard errors of the paper's (``None``: nothing to compare)."""
        if self.status != "ok":
            return None
        return paper_numbers.agrees(self.rel_l2_mean, self.rel_l2_sem, self.paper)


def _finite(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def table_rows(table: str, entries: Sequence[tuple[Entry, str, dict]]) -> list[Row]:
    """Rows from ``(entry, label, metrics)``; the time overhead is relative to the table's PINN row."""
    rows = []
    for entry, label, m in entries:
        per_seed = m.get("rel_l2_per_seed") or []
        vals = [v for v in (_finite(x) for x in per_seed) if v is not None]
        if vals and len(vals) == len(per_seed):
            mean, sem = runs.mean_sem(vals)
        else:
            mean, sem = _finite(m.get("rel_l2_mean")), _finite(m.get("rel_l2_sem"))
        best = [v for v in (_finite(x) for x in m.get("best_rel_l2_per_seed") or []) if v is not None]
        best_mean, best_sem = runs.mean_sem(best) if best else (None, None)
        rows.append(Row(entry.key, label, len(per_seed), _finite(mean), _finite(sem), _finite(m.get("train_seconds")),
                        status=str(m.get("status", "ok")), reused=bool(m.get("_reused", False)),
                        paper=paper_numbers.lookup(table, entry.key), best_rel_l2_mean=_finite(best_mean),
                        best_rel_l2_sem=_finite(best_sem)))
    base = next((r.train_seconds for r in rows if r.key == "pinn" and r.train_seconds), None)
    for r in rows:
        if base and r.train_seconds is not None:
            r.overhead_pct = 100.0 * (r.train_seconds - base) / base
    return rows


def _agree(v: Optional[bool]) -> str:
    return "n/a" if v is None else ("yes" if v else "no")


def _sci(v: Optional[float], digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}e}"


def _mean_pm(mean: Optional[float], sem: Optional[float]) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.2e} ± {_sci(sem, 1)}"


def _secs(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _pct(v: Optional[float], is_base: bool = False) -> str:
    if is_base:
        return "—"
    return "n/a" if v is None else f"{v:+.1f}"


def format_table(rows: Sequence[Row], *, title: str = "", note: str = "") -> tuple[str, str]:
    """``(markdown, csv)`` of a reproduced table beside the paper's numbers ("n/a" where unknown).

    Columns: configuration; final rel. L2 mean ± standard error over seeds; the best-seen one (lowest
    error at any evaluation, per seed -- what the authors' early-stopping protocol reports); training time
    (s); time over PINN (%); the paper's rel. L2, time and time over PINN; whether our final mean lies
    within the combined standard errors of the paper's.
    """
    head = ["Configuration", "seeds", "rel. L2 (mean ± s.e.)", "best seen (mean ± s.e.)", "time (s)",
            "time vs PINN (%)", "paper rel. L2 (mean ± s.e.)", "paper time (s)", "paper vs PINN (%)",
            "agrees (within s.e.)"]
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in rows:
        ours = _mean_pm(r.rel_l2_mean, r.rel_l2_sem) if r.status == "ok" else r.status
        cells = [r.label + (" (reused)" if r.reused else ""), str(r.n_seeds), ours,
                 _mean_pm(r.best_rel_l2_mean, r.best_rel_l2_sem), _secs(r.train_seconds),
                 _pct(r.overhead_pct, r.key == "pinn"), _mean_pm(r.paper.rel_l2_mean, r.paper.rel_l2_sem),
                 _secs(r.paper.time_s), _pct(r.paper.overhead_pct, r.key == "pinn"), _agree(r.agrees)]
        lines.append("| " + " | ".join(cells) + " |")
    if note:
        lines += ["", note]
    md = "\n".join(lines) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "configuration", "status", "n_seeds", "rel_l2_mean", "rel_l2_sem", "best_rel_l2_mean",
                "best_rel_l2_sem", "train_seconds", "time_vs_pinn_pct", "paper_rel_l2_mean", "paper_rel_l2_sem",
                "paper_time_s", "paper_time_vs_pinn_pct", "agrees_within_sem"])

    def c(v: Optional[float]) -> str:
        return "n/a" if v is None else repr(float(v))

    for r in rows:
        w.writerow([r.key, r.label, r.status, r.n_seeds, c(r.rel_l2_mean), c(r.rel_l2_sem), c(r.best_rel_l2_mean),
                    c(r.best_rel_l2_sem), c(r.train_seconds), c(r.overhead_pct), c(r.paper.rel_l2_mean),
                    c(r.paper.rel_l2_sem), c(r.paper.time_s), c(r.paper.overhead_pct), _agree(r.agrees)])
    return md, buf.getvalue()


@dataclass
class TableResult:
    table: str
    out_dir: Path
    rows: list[Row]
    markdown: str
    csv: str
    figures: list[Path]
    #: Keys of configurations other shards have not finished yet (the table is written once none are).
    missing: list[str] = field(default_factory=list)


def sweep_shard(shard: Union[str, tuple[int, int], None] = None) -> tuple[int, int]:
    """``(i, n)``: this job's share of a sweep -- configuration ``j`` is trained by shard ``j % n``.
    ``shard``: ``"i/n"`` (0 <= i < n, e.g. ``--shard 0/4`` of a cluster array job) or a pair; ``None``:
    the rank and world size ``torchrun`` puts in the environment (``RANK``/``WORLD_SIZE``), else ``(0, 1)``."""
    import os

    if shard is None:
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            shard = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
        else:
            return 0, 1
    if isinstance(shard, str):
        try:
            i, n = (int(v) for v in shard.split("/"))
        except ValueError:
            raise ValueError(f"shard must be 'i/n' with integers 0 <= i < n (e.g. '0/2'), got {shard!r}") from None
    else:
        i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be 'i/n' with integers 0 <= i < n (e.g. '0/2'), got {i}/{n}")
    return i, n


def reproduce(
    table: str,
    *,
    seeds: int = 10,
    epochs: Optional[int] = None,
    device: str = "cpu",
    dtype: str = "float32",
    backend: str = "auto",
    out: Union[str, Path, None] = None,
    problem: Optional[str] = None,
    problem_kwargs: Optional[dict] = None,
    lr: float = 1e-3,
    eval_every: int = 100,
    compile: Union[bool, str] = False,
    step_mode: str = "eager",
    derivative_method: str = "auto",
    force: bool = False,
    progress: bool = False,
    figures: bool = True,
    log: Optional[Log] = None,
    fidelity: Optional[dict] = None,
    run_options: Optional[dict] = None,
    shard: Union[str, tuple[int, int], None] = None,
    seeds_per_run: Optional[int] = None,
) -> TableResult:
    """Run every configuration of ``table`` (resumable) and write ``table.md``, ``table.csv``, figures.

    ``seeds_per_run``: train each configuration's seeds in ensembles of at most this many (for an
    ensemble too large for one device, or more ranks than configurations): seeds ``a..b`` of configuration
    ``<key>`` go to ``out/<key>.seeds-a-b/``, each chunk is one unit of work (sharded, resumed and reused
    like a whole configuration), and a configuration's row is assembled from all its chunks' per-seed
    errors (training time: the sum of the chunks'). ``None`` (default): all seeds in ``out/<key>/``.
    A chunk's members train as in the one ensemble (their own points, initialisation, weights and
    optimizer state, and the one ensemble's mini-batch permutation, ``RunConfig.batch_seed``), so the
    per-seed errors are the one ensemble's: bit for bit for a member that is last neither in its chunk nor
    in the one ensemble, to rounding for the others (torch's CPU fused Adam updates the last few elements
    of the flat parameters, the last member's, in a scalar loop that rounds differently; see the README).
    With ``patience`` they differ: a run stops early when none of *its* members improves.

    ``shard``: train only this job's share of the configurations (:func:`sweep_shard`: ``"i/n"``, or
    under ``torchrun`` the rank's, one configuration per rank in turn); every job writes its own run
    directories under the shared ``out``, and the job that finds all of them finished writes the table
    (the others return with :attr:`TableResult.missing` set).

    Each configuration trains its ``seeds`` seeds (0..seeds-1) as one ensemble in ``out/<key>/``. A
    configuration whose directory already holds a finished run of the same configuration, every file of
    which checks out (:func:`fastpinn.runs.verify_run`), is reused; an unfinished one continues from its
    checkpoint; a damaged one is retrained, saying why; a finished run of a *different* configuration is
    only overwritten with ``force``. ``table4`` and ``fig12`` cover the paper's three problems;
    ``problem`` restricts them to one (or runs any table's grid on another problem, without the paper's
    numbers). ``fidelity``: :class:`RunConfig` fidelity options (``update_schedule``, ``init``,
    ``keep_best``, ``patience``); ``run_options``: :func:`train_run` checkpoint options.
    """
    log = log or (lambda s: None)
    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}, got {table!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    spec = TABLES[table]
    own = problem is None or problem in spec.problems  # the paper's problems: its numbers apply
    probs = spec.problems if problem is None else (problem,)
    root = Path(out) if out is not None else Path("runs") / (table if problem is None else f"{table}-{problem}")
    configs = []
    for entry in table_entries(table, problem):
        cfg = RunConfig(problem=entry.problem, scheme=entry.scheme, beta=entry.beta, p=entry.p,
                        bias_correction=entry.bias_correction, seeds=tuple(range(seeds)), ensemble=True,
                        epochs=epochs if epochs is not None else entry.epochs, lr=lr, device=device, dtype=dtype,
                        backend=backend, eval_every=eval_every, problem_kwargs=dict(problem_kwargs or {}),
                        compile=compile, step_mode=step_mode, derivative_method=derivative_method,
                        **dict(fidelity or {}))
        cfg.validate()
        configs.append((entry, cfg))
    chunk = _seeds_per_run(seeds_per_run, seeds)
    preflight_backend(next((c for _, c in configs if c.scheme != "pinn"), configs[0][1]))
    # Refuse before training anything if a finished run of another configuration is in the way (a
    # damaged one is not "another configuration": it is retrained below, saying why).
    plan = []  # the units of work: one per configuration, or per chunk of its seeds
    for entry, cfg in configs:
        for part, suffix in _seed_chunks(cfg, chunk):
            d = root / (entry.key + suffix)
            identity = part.identity(part.resolved_epochs())
            reason = runs.verify_run(d, identity) if d.is_dir() else "absent"
            other = (reason == f"{runs.CONFIG} describes a different configuration"
                     and runs.json_status(d / runs.METRICS) == "ok")
            if other and not force:
                raise runs.RunDirError(f"{str(d)!r} holds a finished run of a different configuration; "
                                       "pass --force to retrain it, or choose another --out")
            plan.append((entry, part, d, reason))
    root.mkdir(parents=True, exist_ok=True)
    from . import _io

    _io.remove_stray_temporaries(root)  # of table files a killed sweep was writing
    results = []
    histories = {}
    missing = []
    me, n_shards = sweep_shard(shard)
    # This shard's own units first, the others' after: a shard that checks another's units only once its
    # own are on disk cannot miss the last of them (whichever shard finishes last sees every run).
    order = sorted(range(len(plan)), key=lambda j: (j % n_shards != me, j))
    finished: dict[int, tuple] = {}
    for j in order:
        entry, cfg, d, reason = plan[j]
        i = j + 1
        label = cfg.describe(show_p=table == "table4")
        if len(probs) > 1:
            label = f"{entry.problem}: {label}"
        if len(cfg.seeds) < seeds:
            label = f"{label} [seeds {cfg.seeds[0]}-{cfg.seeds[-1]}]"
        unit = str(d.relative_to(root))
        if (i - 1) % n_shards != me:  # another shard's: used if finished by now
            reason = runs.verify_run(d, cfg.identity(cfg.resolved_epochs())) if d.is_dir() else "absent"
            if reason is not None:
                missing.append(unit)
                continue
        if reason is None:
            metrics = dict(runs.read_metrics(d) or {})
            metrics["_reused"] = True
            log(f"[{i}/{len(plan)}] {label}: reusing {d} (every file checked)")
        else:
            start = resumable_epoch(d, cfg) if d.is_dir() else None
            if start is not None:
                why = "" if reason in ("absent", f"{runs.METRICS} is missing") else f" ({reason})"
                log(f"[{i}/{len(plan)}] {label}: resuming {d} from its checkpoint at epoch {start}{why}")
            elif reason != "absent" and runs.is_nonempty_dir(d):
                log(f"[{i}/{len(plan)}] {label}: retraining {d}: {reason}")
            else:
                log(f"[{i}/{len(plan)}] {label}: training {len(cfg.seeds)} seed(s) -> {d}")
            try:
                metrics = train_run(cfg, d, force=start is None, resume=start is not None, progress=progress,
                                    figures=figures, command=f"reproduce {table}", log=log, **dict(run_options or {}))
            except Exception as exc:
                from .trainer import NonFiniteError

                if not isinstance(exc, NonFiniteError):
                    raise
                log(f"    diverged: {exc}")
                metrics = runs.read_metrics(d) or {"status": "diverged"}
        if metrics.get("status", "ok") == "ok":
            log(f"    rel. L2 = {_mean_pm(_finite(metrics.get('rel_l2_mean')), _finite(metrics.get('rel_l2_sem')))}"
                f", {_secs(_finite(metrics.get('train_seconds')))} s")
        finished[j] = (entry, label, metrics)
    results = [finished[j] for j in sorted(finished)]
    for entry, _, d, _ in plan:
        if (d / runs.HISTORY).exists() and entry.key not in histories:  # chunked: the first chunk's
            histories[entry.key] = d / runs.HISTORY
    if chunk < seeds:  # one row per configuration, from all its chunks
        results = _merge_chunks(results)
        plan = [u for i, u in enumerate(plan) if i == 0 or u[0].key != plan[i - 1][0].key]
    if missing:
        log(f"shard {me}/{n_shards} done; the table is written when the other shards finish (missing: "
            f"{', '.join(missing)}); rerun any shard to assemble it")
        return TableResult(table, root, [], "", "", [], missing)
    rows = table_rows(table if own else "", results)  # another problem: no paper numbers
    for r in rows:
        if r.paper.rel_l2_mean is not None:
            log(f"{r.label}: ours {_mean_pm(r.rel_l2_mean, r.rel_l2_sem)}, paper "
                f"{_mean_pm(r.paper.rel_l2_mean, r.paper.rel_l2_sem)}, agree within s.e.: {_agree(r.agrees)}")
    how = ("trained as one batched ensemble" if chunk >= seeds else
           f"trained in batched ensembles of at most {chunk} seeds (one run directory each)")
    n_note = (f"{seeds} seed(s) per configuration, {how} on {device}; time = wall time of the training "
              f"epochs of that batched run{'' if chunk >= seeds else ', summed over the chunks'}. Paper numbers: "
              f"{paper_numbers.SOURCE} (10 runs, TensorFlow on an RTX A6000).")
    spec_note = spec.note if own else (
        f"Run on {problem} instead of the paper's {', '.join(spec.problems)}; the paper's numbers do not apply.")
    note = " ".join(s for s in (spec_note, n_note) if s)
    title = spec.title
    if not own or epochs or problem is not None:
        title = f"{spec.title} ({', '.join(probs)}, {epochs or 'paper'} epochs)"
    md, csv_text = format_table(rows, title=title, note=note)
    from . import _io

    _io.atomic_write_text(root / "table.md", md)
    _io.atomic_write_text(root / "table.csv", csv_text)
    runs.write_json(root / "table.json", {
        "table": table, "problems": list(probs), "seeds": seeds, "epochs": epochs, "device": device,
        "rows": [dict(asdict(r), paper=asdict(r.paper), agrees=r.agrees) for r in rows]})
    fig_paths: list[Path] = []
    if figures:
        fig_paths = _table_figures(table, plan, rows, histories, root, title)
    return TableResult(table, root, rows, md, csv_text, fig_paths)


def _seeds_per_run(value: Optional[int], seeds: int) -> int:
    """``seeds_per_run`` checked: an integer >= 1 (``None``: all ``seeds`` in one run)."""
    if value is None:
        return seeds
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"seeds_per_run must be an integer >= 1 (seeds per ensemble run), got {value!r}")
    return min(value, seeds)


def _seed_chunks(cfg: RunConfig, chunk: int) -> list[tuple[RunConfig, str]]:
    """``cfg`` split into configurations of at most ``chunk`` seeds, with their directory suffixes
    (``""`` when it is not split: today's ``out/<key>/``)."""
    if chunk >= len(cfg.seeds):
        return [(cfg, "")]
    parts = []
    for a in range(0, len(cfg.seeds), chunk):
        part = cfg.seeds[a:a + chunk]
        # The shuffling permutation is the one ensemble's (seeded by its first seed), not the chunk's.
        parts.append((replace(cfg, seeds=tuple(part), ensemble=True,
                              batch_seed=cfg.seeds[0] if cfg.batch_seed is None else cfg.batch_seed),
                      f".seeds-{part[0]}-{part[-1]}"))
    return parts


def _merge_chunks(results: list[tuple[Entry, str, dict]]) -> list[tuple[Entry, str, dict]]:
    """One ``(entry, label, metrics)`` per configuration from its chunks' (in seed order): per-seed
    errors concatenated, mean and s.e. over all of them, times summed; diverged if any chunk did."""
    merged: dict[str, tuple[Entry, str, list[dict]]] = {}
    for entry, label, m in results:
        merged.setdefault(entry.key, (entry, label.rsplit(" [seeds ", 1)[0], []))[2].append(m)
    out = []
    for entry, label, parts in merged.values():
        def cat(name: str) -> list:
            return [v for m in parts for v in (m.get(name) or [])]

        per_seed, best = cat("rel_l2_per_seed"), cat("best_rel_l2_per_seed")
        mean, sem = runs.mean_sem(per_seed)
        bad = [m for m in parts if m.get("status", "ok") != "ok"]
        times = [_finite(m.get("train_seconds")) for m in parts]
        out.append((entry, label, {
            "status": bad[0]["status"] if bad else "ok", "rel_l2_per_seed": per_seed, "rel_l2_mean": mean,
            "rel_l2_sem": sem, "best_rel_l2_per_seed": best, "seeds": cat("seeds"), "n_seeds": len(per_seed),
            "train_seconds": sum(times) if None not in times else None, "chunks": len(parts),
            "_reused": all(m.get("_reused", False) for m in parts)}))
    return out


def _table_figures(table: str, plan: list, rows: list[Row], histories: dict, root: Path, title: str) -> list[Path]:
    from . import plots
    from .trainer import History

    paths = []
    try:
        paths.append(plots.plot_table_summary([r.label for r in rows], [r.rel_l2_mean for r in rows],
                                              [r.rel_l2_sem for r in rows], root / "summary.png",
                                              paper=[r.paper.rel_l2_mean for r in rows], title=title))
        problems = list(dict.fromkeys(e.problem for e, *_ in plan))
        if table == "fig12":
            for prob in problems:
                hist = {(e.beta, e.bias_correction): History.load(str(histories[e.key]))
                        for e, *_ in plan if e.problem == prob and e.key in histories}
                if hist:
                    name = "bias_correction.png" if len(problems) == 1 else f"bias_correction-{prob}.png"
                    paths.append(plots.plot_bias_correction(hist, root / name, title=f"{title}: {prob}"))
        # The paper's Figs. 3/6/9: every method's weighted back-propagated gradients side by side, per problem.
        for prob in problems:
            panels, names, ref = {}, None, 0
            for (e, cfg, d, _), r in zip(plan, rows):
                if e.problem == prob and r.status == "ok" and (d / runs.CHECKPOINT).exists():
                    trainer = _trainer_from_run(d, cfg)
                    G = trainer.term_gradients(trainer.term_losses()).detach().cpu().numpy()
                    panels[r.label] = (G, trainer.weighter.weights().detach().cpu().numpy())
                    names, ref = trainer.problem.term_names, trainer.problem.reference_term
            if len(panels) > 1:
                name = "gradients.png" if len(problems) == 1 else f"gradients-{prob}.png"
                paths.append(plots.plot_gradients_side_by_side(panels, names, root / name, reference=ref,
                                                               title=f"{title}: {prob}"))
    except Exception as exc:
        warnings.warn(f"table figures were not written: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
    return paths


def _trainer_from_run(run_dir: Path, cfg: RunConfig) -> Any:
    """The trainer of a finished run, at its final state (for figures that need the network)."""
    _, trainer = build_trainer(cfg)
    trainer.load_checkpoint(str(run_dir / runs.CHECKPOINT))
    return trainer


# -------------------------------------------------------------------------------------------- demo
#: The demo's defaults, chosen from CPU measurements (see the README): Poisson on [0, 1]^2 as in the
#: paper, with fewer epochs and collocation points so that both runs fit in a few minutes on 2 cores.
DEMO_DEFAULTS = {"epochs": 3000, "n_pde": 1000, "n_bc": 400, "beta": 0.9, "seed": 0}


def demo(*, epochs: int = DEMO_DEFAULTS["epochs"], n_pde: int = DEMO_DEFAULTS["n_pde"],
         n_bc: int = DEMO_DEFAULTS["n_bc"], beta: float = DEMO_DEFAULTS["beta"], seed: int = DEMO_DEFAULTS["seed"],
         device: str = "cpu", dtype: str = "float32", backend: str = "auto", out: Union[str, Path, None] = None,
         force: bool = False, progress: bool = False, figures: bool = True, eval_every: int = 250,
         compile: Union[bool, str] = False, step_mode: str = "eager", derivative_method: str = "auto",
         log: Optional[Log] = None) -> dict:
    """Train the paper's Poisson problem with PINN and with DN-PINN at a CPU-sized budget; returns
    ``{"pinn": metrics, "dn": metrics, "ratio": pinn/dn, "out": dir}``."""
    log = log or (lambda s: None)
    root = Path(out) if out is not None else runs.default_run_dir("poisson", "demo")
    kwargs = {"n_pde": n_pde, "n_bc": n_bc}
    cfgs = {name: RunConfig(problem="poisson", scheme=name, beta=beta, seeds=(seed,), epochs=epochs, device=device,
                            dtype=dtype, backend=backend, eval_every=eval_every, problem_kwargs=kwargs,
                            compile=compile, step_mode=step_mode, derivative_method=derivative_method).validate()
            for name in ("pinn", "dn")}
    for cfg in cfgs.values():
        preflight_backend(cfg)
    if not force:
        for name in cfgs:
            if runs.is_nonempty_dir(root / name):
                raise runs.RunDirError(f"output directory {str(root / name)!r} is not empty; "
                                       "pass --force to overwrite it")
    result: dict[str, Any] = {"out": str(root)}
    for name, cfg in cfgs.items():
        log(f"training {cfg.describe()} on Poisson: {epochs} epochs, {n_pde} PDE points ...")
        result[name] = train_run(cfg, root / name, force=force, progress=progress, figures=figures, command="demo")
    e_pinn, e_dn = result["pinn"]["rel_l2"], result["dn"]["rel_l2"]
    result["ratio"] = e_pinn / e_dn if e_dn else float("inf")
    runs.write_json(root / "demo.json", {"pinn": result["pinn"], "dn": result["dn"], "ratio": result["ratio"],
                                          "epochs": epochs, "n_pde": n_pde, "n_bc": n_bc, "beta": beta, "seed": seed})
    return result


# ----------------------------------------------------------------------------------------- compare
#: Schemes ``fastpinn compare`` trains by default: those the Trainer runs today.
COMPARE_DEFAULT = ("pinn", "dn", "id", "ma", "lra", "gradnorm-w")


@dataclass
class CompareResult:
    out_dir: Path
    markdown: str
    rows: list[dict]
    figure: Optional[Path]


def compare(problem: str, schemes: Sequence[str] = COMPARE_DEFAULT, *, seeds: int = 3,
            epochs: Optional[int] = None, device: str = "cpu", dtype: str = "float32", backend: str = "auto",
            out: Union[str, Path, None] = None, problem_kwargs: Optional[dict] = None, eval_every: int = 100,
            lr: float = 1e-3, force: bool = False, progress: bool = False, figure: bool = True,
            log: Callable[[str], None] = lambda s: None) -> CompareResult:
    """Train ``schemes`` side by side on ``problem`` (each one ensemble of ``seeds`` seeds, default
    parameters) and write ``compare.md`` / ``compare.csv`` (rel. L2 mean ± s.e., training time, time over
    PINN; PINN is added when missing) and ``compare.png`` (rel. L2 vs epoch, mean over seeds, per scheme).
    Each run is a run directory ``<out>/<scheme>``; finished ones are reused (:func:`is_complete`)."""
    names = list(dict.fromkeys(["pinn", *schemes]))
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    cfgs = {}
    for name in names:
        if name not in SCHEMES:
            raise ValueError(f"schemes must be among {', '.join(SCHEMES)}, got {name!r}")
        cfgs[name] = RunConfig(problem=problem, scheme=name, seeds=tuple(range(seeds)), ensemble=True, epochs=epochs,
                               lr=lr, device=device, dtype=dtype, backend=backend, eval_every=eval_every,
                               problem_kwargs=dict(problem_kwargs or {})).validate()
    root = Path(out) if out is not None else Path("runs") / f"compare-{problem}"
    preflight_backend(next((c for n, c in cfgs.items() if n != "pinn"), cfgs["pinn"]))
    from .trainer import History

    rows, curves = [], {}
    for name, cfg in cfgs.items():
        run_dir = root / name
        if not force and is_complete(run_dir, cfg):
            log(f"compare: {name}: reusing {run_dir}")
            m = runs.read_json(run_dir / runs.METRICS)
        else:
            log(f"compare: training {cfg.describe()} ({seeds} seeds) -> {run_dir}")
            m = train_run(cfg, run_dir, force=True, progress=progress, figures=False, command="compare")
        h = History.load(str(run_dir / runs.HISTORY))
        if h.rel_l2.shape[0]:
            curves[name] = (h.eval_epochs, h.rel_l2.mean(axis=1))
        rows.append({"scheme": name, "label": cfg.describe(), "status": m.get("status", "ok"),
                     "seeds": seeds, "rel_l2_mean": _finite(m.get("rel_l2_mean")),
                     "rel_l2_sem": _finite(m.get("rel_l2_sem")), "train_seconds": _finite(m.get("train_seconds"))})
    base = rows[0]["train_seconds"]
    for r in rows:
        r["time_over_pinn"] = (r["train_seconds"] / base) if base and r["train_seconds"] is not None else None
    lines = [f"| scheme | seeds | rel. L2 (mean ± s.e.) | time (s) | time / PINN |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        err = _mean_pm(r["rel_l2_mean"], r["rel_l2_sem"]) if r["status"] == "ok" else r["status"]
        ratio = "n/a" if r["time_over_pinn"] is None else f"{r['time_over_pinn']:.2f}"
        lines.append(f"| {r['label']} | {r['seeds']} | {err} | {_secs(r['train_seconds'])} | {ratio} |")
    md = "\n".join(lines) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    from ._io import atomic_write_text

    atomic_write_text(root / "compare.md", md)
    atomic_write_text(root / "compare.csv", buf.getvalue())
    fig_path = None
    if figure and curves:
        from matplotlib.figure import Figure

        from .plots import save_figure

        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.add_subplot()
        for name, (ep, err) in curves.items():
            ax.plot(ep, err, label=cfgs[name].describe())
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"relative L2 error (mean over {seeds} seeds)")
        ax.set_title(f"{problem}: weighting schemes")
        ax.legend(fontsize=8)
        fig_path = save_figure(fig, root / "compare.png")
    return CompareResult(root, md, rows, fig_path)


# ------------------------------------------------------------------------------ trained runs: predict
def load_run(run_dir: Union[str, Path], *, device: Optional[str] = None) -> tuple["RunConfig", Problem, Any]:
    """Rebuild a run directory's problem and trainer and load its checkpoint (the last one written).

    ``device``: where to load it (default: the run's own device when available, else the CPU).

    Raises:
        ValueError: the directory holds no run (``config.json``), or its configuration is invalid here.
        fastpinn.trainer.CheckpointError: the checkpoint is missing, corrupt or does not match.
    """
    out = Path(run_dir)
    config = runs.read_config(out)
    if not config or "config" not in config:
        raise ValueError(f"{str(out)!r} holds no fastpinn run (no readable {runs.CONFIG})")
    cfg = RunConfig.from_dict(config["config"])
    if device is not None:
        cfg.device = device
    elif torch.device(cfg.device).type == "cuda" and not torch.cuda.is_available():
        cfg.device = "cpu"
    problem, trainer = build_trainer(cfg)
    ckpt = out / runs.CHECKPOINT
    if not ckpt.is_file():
        raise ValueError(f"{str(out)!r} has no {runs.CHECKPOINT} to predict from")
    trainer.load_checkpoint(str(ckpt))
    return cfg, problem, trainer


def read_points(path: Union[str, Path], d: int, name: str = "points") -> np.ndarray:
    """Points ``[M, d]`` (or values) from ``.npy`` or ``.csv`` (comma-separated; one header row allowed)."""
    p = Path(path)
    if p.suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
    elif p.suffix == ".csv":
        try:
            arr = np.loadtxt(p, delimiter=",", ndmin=2)
        except ValueError:
            arr = np.loadtxt(p, delimiter=",", ndmin=2, skiprows=1)
    else:
        raise ValueError(f"{name} file must end in .npy or .csv, got {str(p)!r}")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1 and name == "points":
        arr = arr.reshape(-1, 1) if d == 1 else arr
    if d and (arr.ndim != 2 or arr.shape[1] != d):
        raise ValueError(f"{name} in {str(p)!r} must have shape [M, {d}], got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} in {str(p)!r} hold NaN or Inf")
    return arr


def write_array(path: Union[str, Path], arr: np.ndarray, header: Sequence[str]) -> None:
    """Write ``arr`` (``[M, c]``) atomically as ``.npy`` or ``.csv`` (with ``header``)."""
    p = Path(path)
    if p.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, arr)
        _io.atomic_write_bytes(p, buf.getvalue())
    elif p.suffix == ".csv":
        if arr.ndim != 2:
            raise ValueError(f"a .csv output holds a table [M, columns]; this prediction has shape {list(arr.shape)} "
                             "(an ensemble: pick --member, or write .npy)")
        text = io.StringIO()
        np.savetxt(text, arr, delimiter=",", header=",".join(header), comments="")
        _io.atomic_write_text(p, text.getvalue())
    else:
        raise ValueError(f"output file must end in .npy or .csv, got {str(p)!r}")


def evaluate_run(run_dir: Union[str, Path], points: Optional[np.ndarray] = None, values: Optional[np.ndarray] = None,
                 *, device: Optional[str] = None) -> dict:
    """Relative L2 error per seed of a run directory's trained network: on the problem's reference grid, or
    against ``values[M]`` / ``[M, out]`` at ``points[M, d]``."""
    _, problem, trainer = load_run(run_dir, device=device)
    if points is None:
        if problem.solution is None:
            raise ValueError(f"problem {problem.name!r} has no reference solution: pass --points and --values")
        err = trainer.evaluate().cpu().numpy()
        where = "reference grid"
    else:
        if values is None:
            raise ValueError("--points needs --values (the exact or measured solution at those points)")
        pred = trainer.predict(torch.as_tensor(points)).to(torch.float64)
        pred = pred.reshape(1 if pred.dim() == 2 else pred.shape[0], -1)
        exact = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
        if exact.numel() != pred.shape[1]:
            raise ValueError(f"values must hold one entry per point and output ({pred.shape[1]}), got {exact.numel()}")
        from .trainer import rel_l2_error

        err = rel_l2_error(pred, exact).cpu().numpy()
        where = f"{len(points)} given points"
    per_seed = [float(v) for v in np.asarray(err).reshape(-1)]
    mean, sem = runs.mean_sem(per_seed)
    return {"rel_l2_per_seed": per_seed, "rel_l2_mean": mean, "rel_l2_sem": sem if math.isfinite(sem) else None,
            "on": where,
            "epoch": int(trainer.epoch)}
