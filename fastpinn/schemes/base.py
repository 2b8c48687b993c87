"""What a scheme is: a frozen dataclass whose fields are its declared parameters, under a base class that says
what it reads.

Every parameter is declared once, with :func:`param` (type, default, allowed values, help, how it is shown);
from that declaration come the validation (one generic ``__post_init__``), the identity of a run
(:meth:`Scheme.identity`), the description (:meth:`Scheme.describe`), the config serialisation
(:meth:`Scheme.to_dict` / :meth:`Scheme.from_dict`) and the command-line options
(:mod:`fastpinn.schemes.options`). The registry (:mod:`fastpinn.schemes.registry`) gives each scheme class its
command-line name and display title.

The base classes, by what a step must give the :class:`~fastpinn.Weighter` (the ``reads`` attribute it
dispatches on) and how the weights follow from it::

    Scheme
    +-- FixedWeights            reads "fixed"   no update                            PINN
    +-- EMAScheme               candidate weights, smoothed by the shared EMA (beta, tau, bias_correction)
    |   +-- GradientStatsScheme reads "stats"   candidate(stats[S, K, N_STATS], ...)  MA, ID, DN, LRA, GradNormW
    |   +-- TraceScheme         reads "traces"  candidate_from_traces(traces[S, K])   NTK
    +-- StatefulScheme          own state tensors, proposes the weights itself
        +-- LossScheme          reads "losses"  propose(losses[S, K], ...)            SoftAdapt, ReLoBRaLo, Uncertainty
        +-- StatefulStatsScheme reads "stats"   propose_from_stats(stats, losses, ...) GradNorm
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Optional

import torch
from torch import Tensor

from ..ops import layout as L
from ..validation import check_choice, check_flag, check_int, check_number, range_text

__all__ = ["Param", "param", "ema_beta", "update_interval", "bias_correction_flag", "weight_bound", "weight_warmup",
           "Scheme", "FixedWeights",
           "EMAScheme", "GradientStatsScheme", "TraceScheme", "StatefulScheme", "LossScheme", "StatefulStatsScheme",
           "stat_ratio", "losses_ok"]

KINDS = ("float", "int", "bool", "str", "floats", "ints")
#: The largest value an integer parameter takes unless it declares its own maximum.
INT_PARAM_MAX = 2**31 - 1


@dataclass(frozen=True)
class Param:
    """The declaration of one scheme parameter (the metadata of its dataclass field).

    ``kind``: one of ``float``, ``int``, ``bool``, ``str``, ``floats``, ``ints`` (the last two: tuples, of
    ``length`` entries if given); bounds and ``choices`` apply to each entry; ``optional``: ``None`` allowed.
    ``key``: the parameter's name outside the class -- in the run identity, ``config.json`` and the command
    line (``--key``) -- where the field name would be ambiguous there (``MA.form`` is ``ma_form``).
    ``symbol``: how the description shows it (``β=0.9``; a flag shows the symbol alone when set); ``shown``:
    always in the description (the paper's key parameter), else only when it differs from its default.
    """

    kind: str
    default: Any
    help: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    finite: bool = True
    choices: Optional[tuple] = None
    optional: bool = False
    length: Optional[int] = None
    key: str = ""
    symbol: str = ""
    shown: bool = False
    hint: str = ""
    #: A remedy option of the weights (bounds, warm-up): part of the identity and ``config.json`` only when
    #: set, so a run without it keeps the identity it had before the option existed.
    remedy: bool = False
    #: The default of ``fastpinn train`` where the evidence says the class default is a poor first choice
    #: for a new user (DN's beta: 0.99, see docs/weights.md); ``None``: the class default.
    cli_default: Any = None
    name: str = ""  # the field name, filled in by Scheme.declared()

    @property
    def label(self) -> str:
        """How messages name the parameter: the field name, and the key when it differs."""
        return self.name if self.key in ("", self.name) else f"{self.name} ({self.key})"

    # ---------------------------------------------------------------------------------- validation
    def check(self, value: Any) -> Any:
        """``value`` validated and normalised (ints given for floats become floats, sequences tuples);
        ``ValueError`` naming the parameter and the allowed values otherwise."""
        if value is None and self.optional:
            return None
        if self.kind in ("floats", "ints"):
            return self._check_tuple(value)
        try:
            return self._check_one(self.label, value, self.kind)
        except ValueError as exc:
            if not self.optional:
                raise
            raise ValueError(f"{self.label} must be None or {str(exc).split(' must be ', 1)[1]}") from None

    def _check_one(self, label: str, value: Any, kind: str) -> Any:
        if kind == "bool":
            return check_flag(label, value)
        if kind == "str":
            return check_choice(label, value, self.choices or (), hint=self.hint)
        if kind == "int":
            if self.choices is not None:
                return check_choice(label, check_int(label, value, hint=self.hint), self.choices, hint=self.hint)
            # Integer parameters end up in int64 device counters (steps, draws): 2^31 - 1 bounds them
            # far from overflow when no tighter maximum is declared.
            maximum = INT_PARAM_MAX if self.maximum is None else self.maximum
            return check_int(label, value, minimum=self.minimum, maximum=maximum, hint=self.hint)
        return check_number(label, value, minimum=self.minimum, maximum=self.maximum, low_open=self.low_open,
                            high_open=self.high_open, finite=self.finite, hint=self.hint)

    def _check_tuple(self, value: Any) -> tuple:
        item = "float" if self.kind == "floats" else "int"
        ok = isinstance(value, (tuple, list)) and (self.length is None or len(value) == self.length)
        try:
            if ok:
                return tuple(self._check_one(self.label, v, item) for v in value)
        except ValueError:
            pass
        count = {None: "a sequence of", 2: "two", 3: "three"}.get(self.length, str(self.length))
        what = "numbers" if item == "float" else "integers"
        bounds = _bounds_text(self)
        raise ValueError(f"{self.label} must be {'None or ' if self.optional else ''}{count} {what}"
                         f"{' ' + bounds if bounds else ''}{self.hint}, got {value!r}")

    # -------------------------------------------------------------------------------- JSON and text
    def to_json(self, value: Any) -> Any:
        """A JSON-safe form: non-finite floats as strings ("inf"), tuples as lists."""
        if isinstance(value, tuple):
            return [self.to_json(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)  # "inf", "-inf" ("nan" is never valid)
        return value

    def from_json(self, value: Any) -> Any:
        """The inverse of :meth:`to_json` (also reads "Infinity", as older files wrote it)."""
        if isinstance(value, list):
            return tuple(self.from_json(v) for v in value)
        if isinstance(value, str) and self.kind in ("float", "floats"):
            text = value.strip().lower().lstrip("+")
            if text in ("inf", "infinity", "∞"):
                return math.inf
            if text in ("-inf", "-infinity"):
                return -math.inf
        return value

    def text(self, value: Any) -> str:
        """How the description shows a value: ``β=0.9``, ``p=∞``, ``bias corr.``, ``form=wang``."""
        symbol = self.symbol or self.key or self.name
        if self.kind == "bool":
            return symbol if value else f"no {symbol}"
        return f"{symbol}={_value_text(value)}"


def _value_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_value_text(v) for v in value) + ")"
    if isinstance(value, float):
        return "∞" if value == math.inf else f"{value:g}"
    return str(value)


def _bounds_text(p: Param) -> str:
    text = range_text(p.minimum, p.maximum, low_open=p.low_open, high_open=p.high_open)
    if text:
        return text
    if p.choices is not None:
        return "among " + ", ".join(map(str, p.choices))
    return ""


def param(default: Any, *, help: str, kind: Optional[str] = None, **spec: Any) -> Any:
    """Declare a scheme parameter: a dataclass field with its :class:`Param` as metadata.

    ``kind`` is taken from the default when it says (``0.9`` a float, ``10`` an int, ``False`` a flag, a tuple
    of floats ``floats``); give it for a ``None`` default. Other keywords: the fields of :class:`Param`.
    """
    if kind is None:
        kind = _kind_of(default)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "str" and not spec.get("choices"):
        raise ValueError("a str parameter needs its choices")
    return dataclasses.field(default=default, metadata={"param": Param(kind=kind, default=default, help=help,
                                                                       **spec)})


def _kind_of(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, tuple) and default:
        return "ints" if all(isinstance(v, int) and not isinstance(v, bool) for v in default) else "floats"
    raise ValueError(f"give the kind of a parameter with default {default!r}")


# Parameters several schemes share: declared here once, used by each scheme that reads them.
def ema_beta(default: float = 0.9, *, shown: bool = True, cli_default: Optional[float] = None) -> Any:
    """``beta`` of the shared EMA ``lam <- beta lam + (1 - beta) candidate``, in [0, 1)."""
    return param(float(default), minimum=0.0, maximum=1.0, high_open=True, symbol="β", shown=shown,
                 cli_default=cli_default, help="EMA decay of the weights, in [0, 1)")


def update_interval(default: int = 10, **spec: Any) -> Any:
    """``tau``: epochs between weight updates."""
    return param(int(default), minimum=1, symbol="τ", help="epochs between weight updates", **spec)


def bias_correction_flag() -> Any:
    """``bias_correction``: applied weights ``lam / (1 - beta^n)``, ``n`` the term's own updates."""
    return param(False, symbol="bias corr.", help="bias-corrected weights lambda/(1-beta^n)")


def weight_bound(side: str) -> Any:
    """``weight_min`` / ``weight_max``: clamp the adaptive weights (EMA state and applied weight) to a bound
    after every update; ``None`` (default): unbounded, the paper's method exactly."""
    what = "lower" if side == "min" else "upper"
    return param(None, kind="float", optional=True, minimum=0.0, low_open=True, remedy=True,
                 symbol=f"λ_{side}", help=f"{what} bound of the adaptive weights (none: unbounded, the paper's)")


def weight_warmup() -> Any:
    """``weight_warmup``: the weights stay at 1 for the first N epochs (no update before epoch N)."""
    return param(0, minimum=0, remedy=True, symbol="warm-up",
                 help="epochs with fixed weights 1 before the first update (0: none, the paper's)")


# ------------------------------------------------------------------------------------------------ the base
@dataclass(frozen=True)
class Scheme:
    """Base of every weighting scheme. Subclasses are frozen dataclasses whose fields are declared with
    :func:`param`, registered with :func:`fastpinn.schemes.register` (which sets ``name`` and ``title``).

    Class attributes the :class:`~fastpinn.Weighter` reads: ``reads`` (``"fixed"``, ``"stats"``,
    ``"losses"`` or ``"traces"``: what a step gives it), ``dynamic`` and ``uses_reference`` (False: every
    term, the reference included, is adaptive by default).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    reads: ClassVar[str] = ""
    dynamic: ClassVar[bool] = True
    uses_reference: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for p in self.declared().values():
            object.__setattr__(self, p.name, p.check(getattr(self, p.name)))
        self.check()

    def check(self) -> None:
        """Rules that involve several parameters or more than a range (override; raise ``ValueError``)."""

    # ------------------------------------------------------------------------------ the declaration
    @classmethod
    def parameters(cls) -> dict[str, Param]:
        """The scheme's own declared parameters, by key, in declaration order (without the remedy options
        of :meth:`remedies`)."""
        return {k: p for k, p in cls.declared().items() if not p.remedy}

    @classmethod
    def remedies(cls) -> dict[str, Param]:
        """The declared remedy options (``weight_min``, ``weight_max``, ``weight_warmup`` of the EMA schemes)."""
        return {k: p for k, p in cls.declared().items() if p.remedy}

    @classmethod
    def declared(cls) -> dict[str, Param]:
        """Every declared parameter, remedies included, by key, in declaration order (the command-line
        options, validation and :meth:`from_params` read these)."""
        out = {}
        for f in dataclasses.fields(cls):
            spec = f.metadata.get("param")
            if spec is not None:
                spec = dataclasses.replace(spec, name=f.name, key=spec.key or f.name)
                out[spec.key] = spec
        return out

    def params(self) -> dict[str, Any]:
        """The parameter values, by key: every own parameter, and the remedy options that are set."""
        return {key: getattr(self, p.name) for key, p in self.declared().items()
                if not p.remedy or getattr(self, p.name) != p.default}

    def to_dict(self) -> dict[str, Any]:
        """``{"scheme": name, key: value, ...}``: every own parameter and each remedy option that is set,
        JSON-safe (``inf`` as ``"inf"``)."""
        specs = self.declared()
        return {"scheme": self.name, **{key: specs[key].to_json(v) for key, v in self.params().items()}}

    def identity(self) -> dict[str, Any]:
        """What decides this scheme's numbers: its name and every declared parameter (= :meth:`to_dict`)."""
        return self.to_dict()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Scheme":
        """Build from ``{key or field name: value}`` (JSON forms accepted); ``ValueError`` for a parameter
        this scheme does not declare, naming the ones it does."""
        specs = cls.declared()
        by_name = {p.name: p for p in specs.values()}
        kw = {}
        for k, v in params.items():
            p = specs.get(k) or by_name.get(k)
            if p is None:
                have = ", ".join(specs) or "none"
                raise ValueError(f"scheme {cls.name!r} has no parameter {k!r} (its parameters: {have})")
            kw[p.name] = p.from_json(v)
        return cls(**kw)

    def describe(self, show: Iterable[str] = (), extra: Iterable[str] = ()) -> str:
        """``title (parameters)``, e.g. ``DN-PINN (β=0.99, p=1)``: the key parameters, those that differ from
        their defaults, those named in ``show`` (keys), then the ``extra`` parts (e.g. a run's schedule)."""
        show = set(show)
        parts = [p.text(getattr(self, p.name)) for key, p in self.declared().items()
                 if p.shown or key in show or getattr(self, p.name) != p.check(p.default)]
        parts += list(extra)
        title = self.title or self.name or type(self).__name__
        return f"{title} ({', '.join(parts)})" if parts else title


@dataclass(frozen=True)
class FixedWeights(Scheme):
    """Weights that never change (``reads == "fixed"``)."""

    reads: ClassVar[str] = "fixed"
    dynamic: ClassVar[bool] = False


@dataclass(frozen=True)
class EMAScheme(Scheme):
    """Candidate weights smoothed by the shared EMA: ``lam <- beta lam + (1 - beta) hat`` every ``tau`` epochs,
    optionally bias-corrected. Subclasses have (declared, or derived from their paper's parameter) ``beta``,
    ``tau`` and ``bias_correction``; :class:`fastpinn.Weighter` and the compiled op ``fastpinn::ema_update``
    do the rest (per-term bias correction, the adaptive-term mask, skip counting of invalid candidates)."""

    def check(self) -> None:
        # The weights start at 1: bounds that enclose 1 keep the clamp a no-op on a state no update touched
        # (so an update switched off on the device leaves the state exactly as it was).
        lo, hi = getattr(self, "weight_min", None), getattr(self, "weight_max", None)
        if lo is not None and lo > 1.0:
            raise ValueError(f"weight_min must be None or in (0, 1] (the weights start at 1), got {lo!r}")
        if hi is not None and hi < 1.0:
            raise ValueError(f"weight_max must be None or >= 1 (the weights start at 1), got {hi!r}")


@dataclass(frozen=True)
class GradientStatsScheme(EMAScheme):
    """Candidates from the fused statistics of the per-term gradients (``reads == "stats"``)."""

    reads: ClassVar[str] = "stats"
    uses_reference: ClassVar[bool] = True

    @property
    def p(self) -> float:
        """Exponent of the ``NORM_P`` statistic the scheme reads (2; DN declares its own)."""
        return 2.0

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        """Candidate weights ``hat[S, K]`` and their validity ``valid[S, K]`` (bool) from the statistics
        ``stats[S, K, N_STATS]`` of gradient rows of length ``numel``; ``lam_applied[S, K]`` are the weights
        applied now. Entries of non-target terms are ignored. Must not synchronise with the host."""
        raise NotImplementedError


@dataclass(frozen=True)
class TraceScheme(EMAScheme):
    """Candidates from per-term NTK traces ``[S, K]`` (``reads == "traces"``)."""

    reads: ClassVar[str] = "traces"

    def candidate_from_traces(self, traces: Tensor) -> tuple[Tensor, Tensor]:
        """``hat[S, K]`` and ``valid[S, K]`` from ``traces[S, K]``."""
        raise NotImplementedError


@dataclass(frozen=True)
class StatefulScheme(Scheme):
    """Weights proposed by the scheme from its own state tensors (previous losses, trainable weights, ...),
    which live in the Weighter's state (checkpointed, gated on the device). Every term is adaptive by default
    (no reference term)."""

    bias_correction: ClassVar[bool] = False

    def init_state(self, members: int, n_terms: int, dtype: torch.dtype, device: Any) -> dict[str, Tensor]:
        """The scheme's own state tensors (``[S, K]`` / ``[S]``), part of the Weighter's state_dict."""
        return {"prev": torch.ones(members, n_terms, dtype=dtype, device=device),
                "started": torch.zeros(members, dtype=torch.bool, device=device)}

    def initial_weights(self, members: int, n_terms: int, dtype: torch.dtype, device: Any) -> Tensor:
        """``[S, K]`` weights before the first update (1: the unweighted sum)."""
        return torch.ones(members, n_terms, dtype=dtype, device=device)


@dataclass(frozen=True)
class LossScheme(StatefulScheme):
    """Weights from the term losses ``L[S, K]`` alone (``reads == "losses"``): a step needs no per-term
    gradients (one backward of the weighted sum, a PINN-cost step); the softmax runs over the adaptive terms."""

    reads: ClassVar[str] = "losses"

    def propose(self, losses: Tensor, lam: Tensor, state: dict[str, Tensor], target: Tensor,
                n_updates: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``(new_lam[S, K], valid[S], new_state)`` from ``losses[S, K]`` (detached) and the current weights
        ``lam``; pure (no in-place changes), no host sync. ``n_updates[S]``: the members' update counts."""
        raise NotImplementedError


@dataclass(frozen=True)
class StatefulStatsScheme(StatefulScheme):
    """Trainable weights from per-term gradient statistics and the term losses (``reads == "stats"``; the
    step passes ``losses=`` too)."""

    reads: ClassVar[str] = "stats"

    @property
    def p(self) -> float:
        return 2.0

    def propose_from_stats(self, stats: Tensor, losses: Tensor, lam: Tensor, state: dict[str, Tensor],
                           target: Tensor, n_updates: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """As :meth:`LossScheme.propose`, from ``stats[S, K, N_STATS]`` and ``losses[S, K]``."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------------- shared helpers
def stat_ratio(num: Tensor, den: Tensor, stats: Tensor, reference: Optional[int]) -> tuple[Tensor, Tensor]:
    """``hat = num[:, None] / den`` (``num[S]`` or ``[S, 1]``, ``den[S, K]``) and its validity: the rows read
    (term ``j`` and, if given, the reference) have no NaN/Inf entries, and ``num``, ``den`` are finite and > 0.
    A zero or non-finite statistic makes the candidate invalid: the term keeps its weight and is counted."""
    num = num.reshape(num.shape[0], 1)
    nonfinite = stats[:, :, L.NONFINITE]
    valid = (nonfinite == 0) & torch.isfinite(den) & (den > 0) & torch.isfinite(num) & (num > 0)
    if reference is not None:
        valid = valid & (nonfinite[:, reference] == 0).unsqueeze(1)
    return num / den, valid


def losses_ok(losses: Tensor, target: Tensor) -> Tensor:
    """``[S]``: every target loss is finite and > 0 (the loss schemes divide by losses)."""
    bad = ~(torch.isfinite(losses) & (losses > 0)) & target.unsqueeze(0)
    return ~bad.any(dim=1)
