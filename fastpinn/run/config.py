"""A run's configuration: the dtypes and backends a run takes, and :class:`RunConfig`, everything that decides
a run's numbers (which problem a name refers to: :mod:`fastpinn.run.problem_names`)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Union

import torch

from .. import ops
from ..problem import Problem
from ..schemes import SCHEME_NAMES, Scheme, parameters_by_key, scheme_class, scheme_from_name
from .problem_names import (PROBLEMS, USER_PROBLEM_FORM, file_sha256, is_user_problem, problem_factory,
                            problem_takes_seed, user_problem_file)

__all__ = ["PROBLEMS", "USER_PROBLEM_FORM", "SCHEMES", "DTYPES", "BACKENDS", "SIZE_KEYS", "Log", "RunConfig",
           "is_user_problem", "user_problem_file", "file_sha256", "problem_takes_seed", "activation_choices",
           "TRAINING_OPTIONS"]

SCHEMES = SCHEME_NAMES
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: The op backends (:data:`fastpinn.ops.BACKENDS`).
BACKENDS = ops.BACKENDS
#: Problem-size keyword arguments the command line may override (only those a problem takes).
SIZE_KEYS = ("n_pde", "n_bc", "n_ic", "batch_size")

Log = Callable[[str], None]


def activation_choices() -> tuple[str, ...]:
    """The activations a run may name: the network's registry (``fastpinn.network.ACTIVATIONS``) where it
    exists, else tanh alone."""
    from .. import network

    registry = getattr(network, "ACTIVATIONS", None)
    return tuple(registry) if registry else ("tanh",)


# ------------------------------------------------------------------------------------ one configuration
@dataclass
class RunConfig:
    """One training configuration (what ``fastpinn train`` runs, and one row of a table).

    ``scheme``: a registered scheme name; ``scheme_params``: its declared parameters by key
    (:mod:`fastpinn.schemes`), the scheme's defaults filled in. They may also be given flat, as older code and
    ``config.json`` files do: ``RunConfig(problem, scheme="dn", beta=0.99, p=math.inf)``; parameters the
    scheme does not declare are dropped, and ``None`` for a parameter that cannot be ``None`` means its
    default. ``cfg.beta`` reads ``cfg.scheme_params["beta"]``.
    ``seeds``: the seeds trained; ``ensemble``: train them as an ensemble problem (always for more than
    one seed; ``fastpinn train --seeds 1`` gives a one-member ensemble, ``--seed 0`` a single network).
    ``epochs``: ``None`` for the problem's own (the paper's protocol).
    """

    problem: str
    scheme: str = "dn"
    scheme_params: dict = field(default_factory=dict)
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
    #: Optimizer, schedule and network options (each in the identity only when not its default, so runs
    #: written before they existed keep theirs). ``optimizer``: ``adam`` (``epochs`` of Adam), ``lbfgs``
    #: (``lbfgs_iters`` L-BFGS iterations) or ``adam+lbfgs`` (both, in turn); ``lr_schedule``: Adam's
    #: (:data:`fastpinn.optim.LR_SCHEDULE_FORMS`); ``depth``/``width``: ``None`` for the problem's.
    optimizer: str = "adam"
    lbfgs_iters: int = 1000
    lr_schedule: str = "none"
    depth: Optional[int] = None
    width: Optional[int] = None
    activation: str = "tanh"
    input_scaling: bool = True
    #: The name of the reference term of the dynamic weights (``None``: the problem's own); a remedy when
    #: the PDE residual's gradient misleads the weights (docs/weights.md).
    reference_term: Optional[str] = None
    #: Point resampling (:mod:`fastpinn.resampling`): ``None``, or the options of a
    #: :class:`~fastpinn.Resampling` with its kind, e.g. ``{"kind": "rar", "every": 1000, ...}``.
    resampling: Optional[dict] = None

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        self.problem_kwargs = {k: v for k, v in dict(self.problem_kwargs).items() if v is not None}
        if is_user_problem(self.problem):  # absolute, so the run directory can be used from anywhere
            self.problem = f"{user_problem_file(self.problem).resolve()}:{str(self.problem).rpartition(':')[2]}"
        if len(self.seeds) > 1:
            self.ensemble = True
        if self.scheme in SCHEMES:
            self.scheme_params = _resolve_scheme_params(self.scheme, dict(self.scheme_params))

    def __getattr__(self, name: str) -> Any:  # cfg.beta: a declared parameter of the run's scheme
        params = self.__dict__.get("scheme_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------------------- validation
    def validate(self) -> "RunConfig":
        """Raise ``ValueError`` (one line, naming the bad value) for anything a run would reject."""
        factory = problem_factory(self.problem)  # a clear ValueError for an unknown name or a bad file
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        self.scheme_object()  # beta, tau, p, ma_form, alpha, ...: the library's own checks
        self._validate_reference_term()
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
        from ..trainer import DERIVATIVE_METHODS, STEP_MODES

        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise ValueError(f"compile must be true, false or 'auto', got {self.compile!r}")
        if self.step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {', '.join(STEP_MODES)}, got {self.step_mode!r}")
        if self.derivative_method not in DERIVATIVE_METHODS:
            raise ValueError(f"derivative_method must be one of {', '.join(DERIVATIVE_METHODS)}, "
                             f"got {self.derivative_method!r}")
        from ..network import INITS
        from ..weighter import UPDATE_SCHEDULES

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
        self._validate_training_options()
        self.resampling_spec()  # kind and options checked by the declaration
        try:
            dev = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}") from exc
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        from ..trainer import check_device

        check_device(dev)  # DeviceUnavailableError: CUDA asked for, not there
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

    def _validate_reference_term(self) -> None:
        """A reference term only under a scheme that measures the terms against one, or with residual-based
        attention (which weighs the reference term's points): elsewhere it would train a run of its own identity
        that the option does not change (a user trial's ``--scheme pinn --reference-term ic``)."""
        if self.reference_term is None or self.attention is not None:
            return
        if getattr(scheme_class(self.scheme), "uses_reference", False):
            return
        readers = [name for name in SCHEMES if getattr(scheme_class(name), "uses_reference", False)]
        raise ValueError(f"reference_term {self.reference_term!r} does nothing under scheme {self.scheme!r}: only "
                         f"{', '.join(readers)} weigh the terms against a reference term (and --rba attends to "
                         "its points); leave it out or choose one of those schemes")

    def _validate_training_options(self) -> None:
        from ..optim import OPTIMIZER_CHOICES, parse_lr_schedule
        from ..schemes.aggregators import check_closure_optimizer
        from ..validation import check_choice, check_flag, check_int, check_optional_int

        check_choice("optimizer", self.optimizer, OPTIMIZER_CHOICES)
        check_int("lbfgs_iters", self.lbfgs_iters, minimum=1, maximum=2**31 - 1)
        parse_lr_schedule(self.lr_schedule, 1)
        if self.optimizer == "lbfgs" and self.epochs is not None:
            raise ValueError(f"epochs counts the Adam epochs; with optimizer 'lbfgs' the run is lbfgs_iters "
                             f"iterations (got epochs={self.epochs})")
        if self.optimizer == "lbfgs" and self.lr_schedule != "none":
            raise ValueError(f"lr_schedule is Adam's; optimizer 'lbfgs' has none (got {self.lr_schedule!r})")
        if "lbfgs" in self.optimizer:
            check_closure_optimizer(self.scheme_object(), self.optimizer)
        check_optional_int("depth", self.depth, minimum=1, maximum=2**31 - 1)
        check_optional_int("width", self.width, minimum=1, maximum=2**31 - 1)
        check_choice("activation", self.activation, activation_choices())
        check_flag("input_scaling", self.input_scaling)

    def total_epochs(self, adam_epochs: int) -> int:
        """The run's epochs given its Adam epochs: an L-BFGS iteration is one epoch."""
        uses_adam, uses_lbfgs = "adam" in self.optimizer, "lbfgs" in self.optimizer
        return (int(adam_epochs) if uses_adam else 0) + (int(self.lbfgs_iters) if uses_lbfgs else 0)

    def trainer_options(self, adam_epochs: int) -> dict[str, Any]:
        """The Trainer's ``stages=`` for this run's optimizer and schedule (nothing for plain Adam)."""
        from ..optim import Stage, parse_lr_schedule

        schedule = parse_lr_schedule(self.lr_schedule, adam_epochs)
        resampling = self.resampling_spec()
        options: dict[str, Any] = {} if resampling is None else {"resampling": resampling}
        if self.optimizer == "adam":
            return options if schedule is None else {**options, "lr_scheduler": schedule}
        lbfgs = Stage("lbfgs", iterations=int(self.lbfgs_iters))
        if self.optimizer == "lbfgs":
            return {**options, "stages": [lbfgs]}
        return {**options, "stages": [Stage("adam", epochs=int(adam_epochs), lr_scheduler=schedule), lbfgs]}

    def resampling_spec(self) -> Any:
        """The run's :class:`~fastpinn.Resampling` (``None``: none); ``ValueError`` for a bad option."""
        from ..resampling import resampling_from_dict

        spec = resampling_from_dict(self.resampling)
        return None if spec is None or spec.kind == "none" else spec

    def network_options(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`Problem.network <fastpinn.Problem.network>`: only the options the run
        sets away from their defaults, so a problem's declared ``architecture`` keeps its own otherwise."""
        return {**({} if self.activation == "tanh" else {"activation": self.activation}),
                **({} if self.init == "glorot_normal" else {"init": self.init})}

    def scheme_object(self) -> Scheme:
        """The scheme this run trains with (``ValueError`` naming a bad parameter)."""
        return scheme_from_name(self.scheme, **self.scheme_params)

    # ------------------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict:
        """A JSON-safe dict; the scheme's parameters flat beside ``scheme`` (``"p": "inf"``), as always."""
        d = asdict(self)
        params = d.pop("scheme_params")
        if self.scheme in SCHEMES:
            specs = scheme_class(self.scheme).declared()
            params = {k: specs[k].to_json(v) for k, v in params.items()}
        d = {"problem": d.pop("problem"), "scheme": d.pop("scheme"), **params, **d}
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """The inverse of :meth:`to_dict` (also reads older files: flat ``beta``, ``tau``, ``p``, ``alpha``:
        null, parameters of other schemes); ``ValueError`` (one line) for anything else (an edited or
        damaged ``config.json``)."""
        if not isinstance(d, dict):
            raise ValueError(f"a run configuration is a JSON object, got {type(d).__name__}")
        names = set(cls.__dataclass_fields__) | set(parameters_by_key())
        kw = {k: v for k, v in d.items() if k in names}
        try:
            if "seeds" in kw:
                kw["seeds"] = tuple(kw["seeds"])
            cfg = cls(**kw)
            cfg.scheme_object()  # the scheme's values checked here, so a damaged file is named as such
            return cfg
        except (TypeError, AttributeError, ValueError) as exc:  # a missing field, a field of the wrong type or value
            raise ValueError(f"not a fastpinn run configuration ({exc})") from None

    def identity(self, epochs: Optional[int] = None) -> dict:
        """What decides the numbers of a run; two runs with equal identities are interchangeable.

        The backend, evaluation cadence and exact device index are left out (same numbers up to
        rounding). The scheme's part is generated from its declaration: every parameter it declares, none
        it does not read.
        """
        scheme = self.scheme_object()
        d: dict[str, Any] = {
            "problem": self.problem, "problem_kwargs": dict(sorted(self.problem_kwargs.items())),
            **({"problem_file_sha256": file_sha256(user_problem_file(self.problem))} if is_user_problem(self.problem)
               and user_problem_file(self.problem).is_file() else {}),
            "scheme": self.scheme, "seeds": list(self.seeds), "ensemble": bool(self.ensemble),
            "epochs": self.resolved_epochs() if epochs is None else int(epochs),
            "lr": float(self.lr), "dtype": self.dtype,
            "device_type": torch.device(self.device).type,
        }
        d.update(scheme.identity())
        # Fidelity options only when set, so that runs written before they existed keep their identity.
        if self.update_schedule != "fastpinn" and scheme.dynamic:
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
        if self.optimizer != "adam":
            d["optimizer"] = self.optimizer
            d["lbfgs_iters"] = int(self.lbfgs_iters)
        if self.lr_schedule != "none":
            d["lr_schedule"] = self.lr_schedule
        for key in ("depth", "width"):
            if getattr(self, key) is not None:
                d[key] = int(getattr(self, key))
        if self.activation != "tanh":
            d["activation"] = self.activation
        if not self.input_scaling:
            d["input_scaling"] = False
        if self.reference_term is not None:
            d["reference_term"] = self.reference_term
        resampling = self.resampling_spec()
        if resampling is not None:  # only when set, so runs written before it keep their identity
            d["resampling"] = resampling.describe()
        return d

    def resolved_epochs(self) -> int:
        """The run's epochs: ``epochs`` (or the problem's default, the paper's protocol, when it is ``None``)
        of Adam, plus the L-BFGS iterations (:meth:`total_epochs`)."""
        if self.epochs is not None or self.optimizer == "lbfgs":
            return self.total_epochs(0 if self.epochs is None else self.epochs)
        factory = problem_factory(self.problem)
        param = inspect.signature(factory).parameters.get("epochs")
        if param is not None and isinstance(param.default, int):
            return self.total_epochs(param.default)
        return self.total_epochs(self.build_problem().epochs)  # a user's factory without an epochs argument

    # --------------------------------------------------------------------------------- building
    def build_problem(self) -> Problem:
        """The run's problem, with its network shape, input scaling and reference term as the run sets them."""
        problem = self._build_problem()
        shape = {k: v for k, v in (("depth", self.depth), ("width", self.width)) if v is not None}
        if shape or not self.input_scaling:
            problem = dataclasses.replace(problem, **shape, input_scaling=self.input_scaling)
        return with_reference_term(problem, self.reference_term)

    def _build_problem(self) -> Problem:
        seed: Union[int, list[int]] = list(self.seeds) if self.ensemble else self.seeds[0]
        from ..problems import get

        if not is_user_problem(self.problem):
            return get(self.problem, seed=seed, **self.problem_kwargs)
        factory = problem_factory(self.problem)
        takes_seed = "seed" in inspect.signature(factory).parameters

        def one(s: int) -> Problem:
            try:
                made = factory(seed=s, **self.problem_kwargs) if takes_seed else factory(**self.problem_kwargs)
            except Exception as exc:  # the user's code failed: one line naming the function, not a traceback
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ValueError(f"problem {self.problem!r} raised {type(exc).__name__}: {first}") from exc
            if not isinstance(made, Problem):
                raise ValueError(f"problem {self.problem!r} must return a fastpinn.Problem, got {type(made).__name__}")
            # the network is seeded from problem.seeds: make it the run's seed
            return made if made.seeds == (s,) else dataclasses.replace(made, seeds=(s,))

        if self.ensemble:
            from ..problem import stack

            return stack([one(s) for s in self.seeds])
        return one(self.seeds[0])

    def describe(self, *, show_p: bool = False) -> str:
        """Short human-readable name from the scheme's declaration, e.g. ``DN-PINN (β=0.99, p=1)`` (``p``
        shown when not 2, or always with ``show_p``), with a non-default update schedule."""
        scheme = self.scheme_object()
        schedule = [f"{self.update_schedule} schedule"] if self.update_schedule != "fastpinn" and scheme.dynamic else []
        return scheme.describe(show=("p",) if show_p else (), extra=schedule)


def with_reference_term(problem: Problem, name: Optional[str]) -> Problem:
    """``problem`` with the term ``name`` as the reference of the dynamic weights (``None``: as it is). The new
    reference is not adaptive; with the default adaptivity the old reference becomes adaptive, an explicit
    ``adaptive`` mask is kept otherwise."""
    if name is None:
        return problem
    names = list(problem.term_names)
    if name not in names:
        raise ValueError(f"reference_term must be one of {', '.join(names)}, got {name!r}")
    k = names.index(name)
    adaptive = None if problem.adaptive is None else tuple(bool(a) and i != k for i, a in enumerate(problem.adaptive))
    return dataclasses.replace(problem, reference_term=k, adaptive=adaptive)


def _resolve_scheme_params(scheme: str, given: dict) -> dict:
    """``scheme``'s declared parameters by key: ``given`` values (by key or field name, JSON forms read),
    defaults for the rest; other keys dropped; ``None`` for a parameter that cannot be ``None`` is its default
    (older callers and files wrote ``alpha: null`` for "the paper's value")."""
    out = {}
    for key, spec in scheme_class(scheme).declared().items():
        if key in RUN_FIELDS:  # config.json and the identity hold scheme parameters beside the run's fields
            raise ValueError(f"scheme {scheme!r} declares a parameter {key!r}, the name of a run setting; "
                             "give it another key (param(..., key=...))")
        value = given.get(key, given.get(spec.name, spec.default))
        value = spec.default if value is None and not spec.optional else spec.from_json(value)
        if not (spec.remedy and value == spec.default):  # a remedy option is recorded only when set
            out[key] = value
    return out


def _accept_flat_scheme_params(cls: type) -> type:
    """Let ``RunConfig(..., beta=0.99)`` mean ``scheme_params={"beta": 0.99}``: any key a registered scheme
    declares is accepted flat (so a new scheme's parameters are, with no change here)."""
    generated = cls.__init__

    @functools.wraps(generated)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        keys = parameters_by_key()
        flat = {k: kwargs.pop(k) for k in list(kwargs) if k in keys and k not in RUN_FIELDS}
        if flat:
            kwargs["scheme_params"] = {**flat, **dict(kwargs.get("scheme_params") or {})}
        generated(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls


RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunConfig))
#: The run's optimizer, schedule and network options (what ``fastpinn train`` and ``compare`` take for them).
TRAINING_OPTIONS = ("optimizer", "lbfgs_iters", "lr_schedule", "depth", "width", "activation", "init", "input_scaling")
RunConfig = _accept_flat_scheme_params(RunConfig)
