"""Point resampling between epochs: periodic redraws, RAR and RAD, per loss term.

A :class:`Resampling` says what happens to one term's points every ``every`` epochs:

* ``"periodic"``: all ``N`` points are replaced by ``N`` fresh draws from the sampler;
* ``"rar"`` (residual-based adaptive refinement, Lu et al. 2021, DeepXDE): ``candidates`` points are drawn
  and the ``points`` of them with the largest residual ``|r|`` are added (``N`` grows);
* ``"rad"`` (residual-based adaptive distribution, Wu et al. 2023): ``candidates`` points are drawn and
  ``N`` of them are kept, drawn without replacement with probability
  ``p(x) ∝ |r(x)|^k / mean |r|^k + c`` (``c`` large: uniform; ``k`` large: the worst points).

The sampler draws candidates: the resampling's ``sampler``, else the term's own (``pde(...,
sampler=domain)``, so ``fastpinn train FILE.py:fn --resample ...`` samples a user's domain), else uniformly in
the problem's box ``[lower, upper]`` (the interior of the built-in problems' PDE terms). A sampler is a
:mod:`fastpinn.geometry` domain (its ``sample_interior``) or a function ``sampler(n, generator) -> [n, d]``. The residual is the term's own
(:meth:`~fastpinn.Term.residual_values` with the derivative method the trainer uses for the term); no
gradient flows to the parameters. Each ensemble member has its own points and its own generator, seeded from
its seed, so member ``s`` resamples as the single run of seed ``s`` does.

The Trainer composes a :class:`Resampler` (``Trainer(resampling=...)``): it resamples at the start of
every epoch ``e > 0`` with ``e % every == 0``, counted from the start of training, and its generators and
the point sets are in the checkpoint, so a resumed run equals the uninterrupted one. Data parallelism is
refused (the points are sharded over ranks); ``"rar"`` changes the point count, so it refuses
``step_mode="cuda_graph"`` (static shapes) and mini-batched terms; ``"periodic"`` and ``"rad"`` keep it and
write the new points in place, so captured graphs stay valid.

The options are declared once (:data:`OPTIONS`): the checks, the ``fastpinn train --resample*`` options
and the run identity are generated from the declaration.
"""

from __future__ import annotations

import dataclasses
import argparse
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from . import sampling
from .problem import Problem, Term
from .validation import check_choice, check_int, check_number

__all__ = ["KINDS", "OPTIONS", "Option", "Resampling", "Resampler", "residual_magnitude", "rar_indices",
           "rad_probabilities", "rad_indices", "option_flag", "add_resampling_options", "resampling_from_args",
           "resampling_from_dict", "training_resampler"]

KINDS = ("none", "periodic", "rar", "rad")
#: Added to the member's seed for the resampling generator, so it does not repeat the points' own draws.
SEED_OFFSET = 104_729

Sampler = Union[Callable[[int, torch.Generator], Tensor], Any]


@dataclass(frozen=True)
class Option:
    """One declared resampling option: its field, type, default, bounds, the kinds that read it and help."""

    name: str
    type: type
    default: Any
    help: str
    kinds: tuple[str, ...]
    minimum: Optional[float] = None
    low_open: bool = False

    def check(self, value: Any) -> Any:
        if self.type is int:
            return check_int(f"resampling {self.name}", value, minimum=self.minimum)
        return check_number(f"resampling {self.name}", value, minimum=self.minimum, low_open=self.low_open)


#: The declaration of every numeric option (``kind``, ``term``, ``sampler`` and ``seed`` are fields too).
OPTIONS: tuple[Option, ...] = (
    Option("every", int, 1000, "epochs between resamplings", ("periodic", "rar", "rad"), minimum=1),
    Option("candidates", int, 10_000, "candidate points drawn per resampling", ("rar", "rad"), minimum=1),
    Option("points", int, 10, "points of largest residual added per resampling", ("rar",), minimum=1),
    Option("k", float, 1.0, "exponent of |r| in the density", ("rad",), minimum=0.0),
    Option("c", float, 1.0, "constant added to the normalized density (large: uniform)", ("rad",), minimum=0.0),
)


def option_flag(name: str) -> str:
    """The command-line option of a declared field: ``candidates`` -> ``--resample-candidates``."""
    return "--resample-" + name.replace("_", "-")


@dataclass(frozen=True)
class Resampling:
    """How one term's points are resampled (see the module doc).

    Attributes:
        kind: one of :data:`KINDS`.
        every, candidates, points, k, c: see :data:`OPTIONS` (each read only by the kinds it names).
        term: the term's name (``None``: the problem's reference term, the PDE residual).
        sampler: draws candidate points ``[n, d]``: ``None`` (the term's own ``sampler``, e.g.
            ``pde(..., sampler=domain)``, else uniform in the problem's box), a :mod:`fastpinn.geometry` domain,
            or ``fn(n, generator)``.
        seed: seed of the resampling generator (``None``: each member's seed + :data:`SEED_OFFSET`; an
            int: that seed + the member's index).
    """

    kind: str = "none"
    every: int = 1000
    candidates: int = 10_000
    points: int = 10
    k: float = 1.0
    c: float = 1.0
    term: Optional[str] = None
    sampler: Optional[Sampler] = None
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        check_choice("resampling kind", self.kind, KINDS)
        for opt in OPTIONS:
            object.__setattr__(self, opt.name, opt.type(opt.check(getattr(self, opt.name))))
        if self.term is not None and not isinstance(self.term, str):
            raise ValueError(f"resampling term must be None (the reference term) or a term name, got {self.term!r}")
        if self.seed is not None:
            check_int("resampling seed", self.seed, minimum=0)
        if not (self.sampler is None or callable(self.sampler) or hasattr(self.sampler, "sample_interior")):
            raise ValueError("resampling sampler must be None (the term's own, else the problem's box), a "
                             "fastpinn.geometry domain or a function (n, generator) -> [n, d], got "
                             f"{type(self.sampler).__name__}")

    def describe(self) -> dict[str, Any]:
        """The options this kind reads (what a checkpoint and a run identity record); ``{"kind": "none"}``
        for none."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "none":
            return out
        out.update({o.name: getattr(self, o.name) for o in OPTIONS if self.kind in o.kinds})
        out["term"] = self.term
        out["sampler"] = ("default" if self.sampler is None else
                          type(self.sampler).__name__ if hasattr(self.sampler, "sample_interior") else "function")
        if self.seed is not None:
            out["seed"] = self.seed
        return out


def resampling_from_dict(options: Optional[dict[str, Any]]) -> Optional[Resampling]:
    """A :class:`Resampling` from its recorded form (``config.json``: kind, the declared options, term);
    ``None`` for ``None``. ``ValueError`` (one line) for a key it does not take."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise ValueError(f"resampling must be a dict of options or None, got {type(options).__name__}")
    allowed = ("kind", *(o.name for o in OPTIONS), "term", "seed")
    for key in options:
        check_choice("resampling option", key, allowed + ("sampler",))
    # a run's sampler is the default one (the term's own, else the box); the record only names it
    return Resampling(**{k: v for k, v in options.items() if k != "sampler"})


def add_resampling_options(parser: argparse.ArgumentParser) -> None:
    """``--resample KIND``, ``--resample-term NAME`` and one ``--resample-<name>`` per declared option
    (default ``None``: the declared default), generated from :data:`OPTIONS`."""
    group = parser.add_argument_group("point resampling (fastpinn.resampling)")
    group.add_argument("--resample", choices=KINDS, default="none",
                       help="resample the PDE term's points every --resample-every epochs: periodic (fresh draws), "
                            "rar (add the candidates of largest residual) or rad (draw from p ∝ |r|^k / mean |r|^k "
                            "+ c); candidates come from the term's sampler, else the problem's box (default none; "
                            "see docs/resampling.md)")
    group.add_argument("--resample-term", default=None, metavar="NAME",
                       help="the term resampled (default: the reference term, the PDE residual)")
    for opt in OPTIONS:
        group.add_argument(option_flag(opt.name), dest=f"resample_{opt.name}", type=opt.type, default=None,
                           metavar="N" if opt.type is int else "X",
                           help=f"{opt.help} ({', '.join(opt.kinds)}; default {opt.default})")


def resampling_from_args(args: argparse.Namespace) -> Optional[dict[str, Any]]:
    """The run's resampling options from :func:`add_resampling_options` (``None`` for ``--resample none``),
    the declared defaults filled in; ``ValueError`` (one line) for an option the kind does not read."""
    kind = getattr(args, "resample", "none")
    given = {o.name: getattr(args, f"resample_{o.name}", None) for o in OPTIONS}
    given = {k: v for k, v in given.items() if v is not None}
    if kind == "none":
        if given or getattr(args, "resample_term", None) is not None:
            raise ValueError(f"{option_flag(next(iter(given), 'term'))} needs --resample periodic, rar or rad")
        return None
    for opt in OPTIONS:
        if opt.name in given and kind not in opt.kinds:
            reads = ", ".join(option_flag(o.name) for o in OPTIONS if kind in o.kinds)
            raise ValueError(f"{option_flag(opt.name)} is not an option of --resample {kind} (its options: {reads})")
    spec = Resampling(kind, **given, term=getattr(args, "resample_term", None))  # checked here
    return {k: v for k, v in spec.describe().items() if k != "sampler"}


# ------------------------------------------------------------------------------------- public pieces
def residual_magnitude(term: Term, net: Any, coords: Sequence[str], candidates: Tensor, *, method: str = "auto",
                       theta: Any = None, coef: Optional[dict[str, Tensor]] = None, chunk: int = 8192) -> Tensor:
    """``|r|`` of ``term`` at ``candidates`` ``[M, d]`` (``[S, M, d]``): ``[M]`` (``[S, M]``), the Euclidean
    norm over the components of a vector residual. Uses the term's residual and derivative ``method``,
    in chunks of ``chunk`` points; the result is detached (nothing is differentiated w.r.t. the parameters)."""
    if len(term.points) != 1 or term.targets is not None:
        raise ValueError(f"term {term.name!r}: resampling needs a term on one point set without targets "
                         "(e.g. a PDE residual)")
    if isinstance(theta, (list, tuple)):
        theta = [t.detach() for t in theta]
    parts = []
    for start in range(0, candidates.shape[-2], chunk):
        x = candidates.narrow(-2, start, min(chunk, candidates.shape[-2] - start))
        probe = dataclasses.replace(term, points=(x,), batch_size=None)
        r = probe.residual_values(net, coords, method=method, theta=theta, coef=coef).detach()
        lead = x.dim() - 1  # the residual's [M] or [S, M] dims
        parts.append(r.abs() if r.dim() == lead else r.norm(dim=-1))
    return torch.cat(parts, dim=-1)


def rar_indices(magnitude: Tensor, m: int) -> Tensor:
    """The indices ``[m]`` (``[S, m]``) of the ``m`` largest entries of ``magnitude`` ``[M]`` (``[S, M]``)."""
    return magnitude.topk(min(m, magnitude.shape[-1]), dim=-1).indices


def rad_probabilities(magnitude: Tensor, k: float, c: float) -> Tensor:
    """``p ∝ |r|^k / mean |r|^k + c`` over the last dimension, normalized to sum 1 (uniform if every
    ``|r|^k`` is 0). A non-finite ``|r|`` counts as 0: a diverging run is the NaN check's to report (and
    roll back), not a sampling error's."""
    e = magnitude.to(torch.float64).pow(k)
    e = torch.where(torch.isfinite(e), e, torch.zeros_like(e))
    mean = e.mean(dim=-1, keepdim=True)
    p = torch.where(mean > 0, e / mean.clamp_min(torch.finfo(torch.float64).tiny), torch.ones_like(e)) + c
    return p / p.sum(dim=-1, keepdim=True)


def rad_indices(magnitude: Tensor, n: int, k: float, c: float, generator: torch.Generator) -> Tensor:
    """``n`` indices ``[n]`` (``[S, n]``) drawn without replacement with :func:`rad_probabilities`
    (on the CPU, from ``generator``)."""
    p = rad_probabilities(magnitude, k, c).cpu()
    if n > p.shape[-1]:
        raise ValueError(f"rad needs at least as many candidates as points: {p.shape[-1]} candidates for {n} points")
    return torch.multinomial(p, n, replacement=False, generator=generator).to(magnitude.device)


# ----------------------------------------------------------------------------------------- the loop part
class Resampler:
    """The resampling of a trainer's problem: one :class:`Resampling` per term that has one.

    Args:
        specs: the :class:`Resampling` of each term (``kind="none"`` ones are dropped).
        problem: the trainer's problem (on its device and dtype); the resampled terms' point tensors are
            cloned (the trainer's own) and from then on changed in place (same count) or replaced (RAR).
    """

    def __init__(self, specs: Sequence[Resampling], problem: Problem) -> None:
        self.problem = problem
        names = problem.term_names
        self.specs: dict[int, Resampling] = {}
        for spec in specs:
            if not isinstance(spec, Resampling):
                raise ValueError(f"resampling must be a fastpinn.Resampling or a list of them, got {type(spec).__name__}")
            if spec.kind == "none":
                continue
            name = names[problem.reference_term] if spec.term is None else spec.term
            check_choice("resampling term", name, names)
            k = names.index(name)
            if k in self.specs:
                raise ValueError(f"resampling: term {name!r} is given twice")
            term = problem.terms[k]
            if len(term.points) != 1 or term.targets is not None:
                raise ValueError(f"resampling term {name!r}: only a term on one point set without targets can be "
                                 "resampled (e.g. a PDE residual, not a boundary value or periodic pair)")
            if spec.kind == "rar" and term.n_batches > 1:
                raise ValueError(f"resampling kind 'rar' on the mini-batched term {name!r} would change the steps "
                                 "per epoch; use kind 'rad' or 'periodic', or batch_size=None")
            if spec.kind == "rad" and spec.candidates < term.n_points:
                raise ValueError(f"resampling candidates must be >= the term's {term.n_points} points for kind "
                                 f"'rad' (term {name!r}), got {spec.candidates}")
            term.points = (term.points[0].clone(),)
            self.specs[k] = spec
        seeds = list(problem.seeds) if problem.ensemble is not None else [problem.seeds[0]]
        self.generators = []
        for s, member_seed in enumerate(seeds):
            base = [spec.seed for spec in self.specs.values() if spec.seed is not None]
            seed = base[0] + s if base else member_seed + SEED_OFFSET
            self.generators.append(torch.Generator().manual_seed(seed))
        #: Resamplings done so far (all terms count once per epoch they resample at).
        self.count = 0

    def __bool__(self) -> bool:
        return bool(self.specs)

    @property
    def changes_counts(self) -> bool:
        """Whether some term's point count changes (RAR): what static-shape graphs cannot follow."""
        return any(spec.kind == "rar" for spec in self.specs.values())

    def check_training(self, *, world_size: int, step_mode: str, attended: Sequence[int] = ()) -> None:
        """``ValueError`` (one line) for what this resampling cannot train with: data parallelism (the points
        are sharded over the ranks), RAR under ``step_mode="cuda_graph"`` (static shapes; no re-capture) and
        pointwise attention on a resampled term (``attended``: those terms)."""
        if not self.specs:
            return
        if world_size > 1:
            raise ValueError("resampling is not supported with distributed training (the points are sharded over "
                             "the ranks); train in one process or use resampling kind 'none'")
        if self.changes_counts and step_mode == "cuda_graph":
            raise ValueError("resampling kind 'rar' changes the point count, which a captured CUDA graph cannot "
                             "follow; use step_mode='device' or 'eager', or kind 'rad' or 'periodic'")
        if set(attended) & set(self.specs):
            raise ValueError("resampling a term with pointwise attention is not supported (its weights belong to "
                             "the points); resample another term or drop attention")

    def describe(self) -> dict[str, dict[str, Any]]:
        """Term name -> its resampling options (recorded in checkpoints: a different setup does not resume)."""
        names = self.problem.term_names
        return {names[k]: spec.describe() for k, spec in self.specs.items()}

    def due(self, epoch: int) -> list[int]:
        """The terms resampled at the start of ``epoch``."""
        return [k for k, spec in self.specs.items() if epoch > 0 and epoch % spec.every == 0]

    def draw(self, k: int, n: int) -> Tensor:
        """``n`` candidate points per member for term ``k``: ``[n, d]`` (``[S, n, d]``), from the members'
        generators, by the resampling's sampler, else the term's, else uniformly in the problem's box."""
        p = self.problem
        sampler = self.specs[k].sampler if self.specs[k].sampler is not None else p.terms[k].sampler
        one = []
        for gen in self.generators:
            if sampler is None:
                x = sampling.uniform(n, p.lower, p.upper, gen, dtype=torch.float64)
            elif hasattr(sampler, "sample_interior"):
                x = sampler.sample_interior(n, "uniform", gen, dtype=torch.float64)
            else:
                x = torch.as_tensor(sampler(n, gen))
            if tuple(x.shape) != (n, len(p.coords)):
                raise ValueError(f"resampling sampler must return [n, d] = [{n}, {len(p.coords)}] points, "
                                 f"got {list(x.shape)}")
            one.append(x)
        ref = self.problem.terms[0].points[0]
        x = one[0] if p.ensemble is None else torch.stack(one)
        return x.to(device=ref.device, dtype=ref.dtype)

    def resample(self, epoch: int, magnitude: Callable[[int, Tensor], Tensor]) -> list[int]:
        """Resample the terms due at ``epoch``; ``magnitude(k, candidates)`` gives term ``k``'s ``|r|`` at
        candidates (:func:`residual_magnitude` with the trainer's network and method). Returns the terms
        whose points changed."""
        done = self.due(epoch)
        for k in done:
            spec, term = self.specs[k], self.problem.terms[k]
            old = term.points[0]
            if spec.kind == "periodic":
                with torch.no_grad():
                    old.copy_(self.draw(k, term.n_points))
                continue
            cand = self.draw(k, spec.candidates)
            mag = magnitude(k, cand)
            if spec.kind == "rar":
                idx = rar_indices(mag, spec.points)
                term.points = (torch.cat([old, _take(cand, idx)], dim=-2),)
            else:
                rows = [rad_indices(mag[s] if mag.dim() == 2 else mag, term.n_points, spec.k, spec.c, gen)
                        for s, gen in enumerate(self.generators)]
                idx = rows[0] if mag.dim() == 1 else torch.stack(rows)
                with torch.no_grad():
                    old.copy_(_take(cand, idx))
        self.count += bool(done)
        return done

    def resample_with_network(self, epoch: int, net: Any, *, methods: dict[str, str], theta: Any = None,
                              coef: Optional[dict[str, Tensor]] = None) -> list[int]:
        """:meth:`resample` with each term's ``|r|`` under ``net`` as it is now (:func:`residual_magnitude`
        with term ``name``'s derivative method ``methods[name]``, the parameters ``theta`` and the
        coefficients ``coef``). Returns the terms whose points changed."""
        def magnitude(k: int, candidates: Tensor) -> Tensor:
            term = self.problem.terms[k]
            return residual_magnitude(term, net, self.problem.coords, candidates, coef=coef,
                                      method=methods[term.name], theta=theta)

        return self.resample(epoch, magnitude)

    def state_dict(self) -> dict[str, Any]:
        """The generators' states and the resampled terms' points (tensors only)."""
        names = self.problem.term_names
        return {"generators": [g.get_state() for g in self.generators],
                "points": {names[k]: self.problem.terms[k].points[0].detach().clone() for k in self.specs},
                "count": self.count}

    def load_state_dict(self, state: Optional[dict[str, Any]]) -> list[int]:
        """Continue from :meth:`state_dict`; returns the terms whose points were set."""
        if state is None or len(state.get("generators", ())) != len(self.generators):
            raise ValueError("the state has no resampling state for this trainer's resampling "
                             f"(terms {sorted(self.describe())})")
        for g, s in zip(self.generators, state["generators"]):
            g.set_state(s)
        names = self.problem.term_names
        for k in self.specs:
            term = self.problem.terms[k]
            pts = state["points"][names[k]].to(device=term.points[0].device, dtype=term.points[0].dtype)
            if pts.shape == term.points[0].shape:
                with torch.no_grad():
                    term.points[0].copy_(pts)  # same tensor: captured graphs stay valid
            else:
                term.points = (pts.clone(),)
        self.count = int(state.get("count", 0))
        return list(self.specs)


def training_resampler(resampling: Union[Resampling, Sequence[Resampling], None], problem: Problem, *,
                       world_size: int, step_mode: str, attended: Sequence[int] = ()) -> Optional[Resampler]:
    """The :class:`Resampler` a trainer composes for ``resampling`` (one :class:`Resampling` or a list),
    checked against how it trains (:meth:`Resampler.check_training`); ``None`` when nothing is resampled."""
    if resampling is None:
        return None
    resampler = Resampler([resampling] if isinstance(resampling, Resampling) else list(resampling), problem)
    resampler.check_training(world_size=world_size, step_mode=step_mode, attended=attended)
    return resampler if resampler else None


def _take(x: Tensor, idx: Tensor) -> Tensor:
    """Rows ``idx`` ``[m]`` (``[S, m]``) of points ``[M, d]`` (``[S, M, d]``)."""
    if x.dim() == 2:
        return x.index_select(0, idx)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
