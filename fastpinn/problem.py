"""Problems: coordinates, a domain box, loss terms on point sets, a network shape, and a reference solution.

A loss term is a residual evaluated on one or more fixed point sets; its loss is the mean of the squared
residual. The first term is, by convention, the PDE residual and the reference of the weighting schemes.

    def residual(f):                     # f: Fields with the requested derivatives
        return f["u_xx"] - source(f.x)   # [..., N] or [..., N, m]

    problem = Problem(
        name="my_pde", coords=("x",), lower=(-1.0,), upper=(1.0,),
        terms=[pde("pde", x_pde, residual, requests=("u_xx",)),
               dirichlet("bc", x_bc, value=0.0)],
        depth=4, width=32)

Points are ``[N, d]`` for one network or ``[S, N, d]`` for an ensemble of ``S`` networks that each
have their own points (see :func:`stack`). The terms and their constructors are :mod:`fastpinn.terms`'s,
re-exported here.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from .derivatives import parse_requests
from .network import MLP
from .terms import Term, data, dirichlet, initial, neumann, pde, periodic, robin
from .validation import check_flag

__all__ = ["POINTS_OUTSIDE", "Term", "Problem", "pde", "data", "dirichlet", "initial", "neumann", "robin", "periodic", "stack",
           "Seed", "ensemble_of"]

POINTS_OUTSIDE = ("warn", "error", "ignore")


@dataclass
class Problem:
    """A PINN problem: coordinates, domain box, loss terms, network shape and an optional reference.

    Attributes:
        name: identifier.
        coords: names of the input coordinates in column order, e.g. ``("t", "x")``.
        lower, upper: the domain box ``[d]`` (also the network's input scaling).
        terms: loss terms; ``terms[reference_term]`` is the reference of the weighting (the PDE residual).
        depth, width, out_dim: network shape (depth counts weight layers).
        epochs: the default number of epochs (the paper's protocol).
        reference_term: index or name of the reference term (the paper: the term of highest derivative
            order, the PDE residual); stored as the index.
        adaptive: which terms get dynamic weights (default: all but the reference).
        solution: callable returning ``(X[M, d], U[M])`` or ``U[M, out]`` on an evaluation grid.
        seeds: the seeds the points were drawn from (one per ensemble member, or one).
        ensemble: ``None`` for points ``[N, d]``, else ``S`` for points ``[S, N, d]``.
        coefficients: trainable PDE coefficients (inverse problems) by name, with their initial values,
            e.g. ``{"nu": 0.05}``; trained with the network and read by residuals as ``f.coef["nu"]``.
        points_outside: what a point outside the box ``[lower, upper]`` does at construction:
            ``"warn"`` (default, ``UserWarning``), ``"error"`` (``ValueError``) or ``"ignore"``.
        input_scaling: ``True`` (default): :meth:`network` min-max scales the inputs from the box onto
            ``[-1, 1]``; ``False``: it feeds the raw coordinates (as DeepXDE's networks do by default).
        architecture: the network this problem is meant to train with, as a class or factory called like
            :class:`~fastpinn.MLP` (``(in_dim, out_dim, depth, width, lower, upper, *, seed, dtype, device,
            ...)``), e.g. ``functools.partial(MLP, input_transform=features, output_transform=hard)`` or
            ``functools.partial(FourierFeatureMLP, sigma=10.0)``; ``None``: a plain :class:`~fastpinn.MLP`.
            The one place a problem declares its network: :meth:`network`, the Trainer's default network,
            ``fastpinn train FILE.py:FUNCTION`` and ``fastpinn compare`` all build it from here (the command
            line's ``--activation``/``--init``, when set away from tanh/glorot_normal, override the factory's own).
    """

    name: str
    coords: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    terms: list[Term]
    depth: int = 4
    width: int = 50
    out_dim: int = 1
    epochs: int = 10_000
    reference_term: Union[int, str] = 0
    adaptive: Optional[tuple[bool, ...]] = None
    solution: Optional[Callable[[], tuple[np.ndarray, np.ndarray]]] = None
    seeds: tuple[int, ...] = (0,)
    ensemble: Optional[int] = None
    extra: dict = field(default_factory=dict)
    coefficients: dict = field(default_factory=dict)
    points_outside: str = "warn"
    input_scaling: bool = True
    architecture: Optional[Callable[..., Any]] = None

    def __post_init__(self) -> None:
        self.coords = tuple(self.coords)
        d = len(self.coords)
        if len(set(self.coords)) != d or d == 0:
            raise ValueError(f"coords must be distinct names, got {self.coords}")
        self.lower = tuple(float(v) for v in self.lower)
        self.upper = tuple(float(v) for v in self.upper)
        if len(self.lower) != d or len(self.upper) != d:
            raise ValueError(f"lower and upper must have one entry per coordinate {self.coords}")
        for c, lo, hi in zip(self.coords, self.lower, self.upper):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"the box must have finite lower < upper in every coordinate, got "
                                 f"lower={lo} >= upper={hi} for {c!r}" if lo >= hi else
                                 f"the box must be finite, got lower={lo}, upper={hi} for {c!r}")
        check_flag("input_scaling", self.input_scaling)
        if self.architecture is not None and not callable(self.architecture):
            raise ValueError(f"architecture must be None or a network class/factory called like fastpinn.MLP, "
                             f"got {type(self.architecture).__name__}")
        if self.points_outside not in POINTS_OUTSIDE:
            raise ValueError(f"points_outside must be one of {POINTS_OUTSIDE}, got {self.points_outside!r}")
        if not self.terms:
            raise ValueError("terms must hold at least one loss term")
        self.coefficients = dict(self.coefficients)
        for k, v in self.coefficients.items():
            if not (isinstance(k, str) and k.isidentifier()):
                raise ValueError(f"coefficient names must be identifiers, got {k!r}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"coefficient {k!r} must start at a finite number, got {v!r}")
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"term names must be distinct, got {names}")
        for t in self.terms:
            if t.points[0].shape[-1] != d:
                raise ValueError(f"term {t.name!r}: points have {t.points[0].shape[-1]} coordinates, problem has {d}")
            lead = None if t.points[0].dim() == 2 else t.points[0].shape[0]
            if lead != self.ensemble:
                raise ValueError(f"term {t.name!r}: points {tuple(t.points[0].shape)} do not match ensemble={self.ensemble}")
        if isinstance(self.reference_term, str):
            if self.reference_term not in names:
                raise ValueError(f"reference_term must be a term name from {names} or an index, got {self.reference_term!r}")
            self.reference_term = names.index(self.reference_term)
        self._check_points_in_box()
        if not 0 <= self.reference_term < len(self.terms):
            raise ValueError(f"reference_term must be in [0, {len(self.terms)}), got {self.reference_term}")
        if self.adaptive is not None and len(self.adaptive) != len(self.terms):
            raise ValueError(f"adaptive must have {len(self.terms)} entries, got {len(self.adaptive)}")
        for t in self.terms:
            try:
                parse_requests(t.requests, self.coords)
            except ValueError as exc:
                raise ValueError(f"term {t.name!r}: {exc}") from None
            t.check_residual(self.coords, self.out_dim, self.ensemble, self.coefficients)

    def _check_points_in_box(self) -> None:
        """Points outside ``[lower, upper]`` are scaled outside ``[-1, 1]`` by the network: usually a mistake."""
        if self.points_outside == "ignore":
            return
        lo = torch.tensor(self.lower, dtype=torch.float64)
        hi = torch.tensor(self.upper, dtype=torch.float64)
        slack = 1e-6 * (hi - lo)  # float32 rounding of points drawn on the boundary
        for t in self.terms:
            for pts in t.points:
                p = pts.detach().to(device="cpu", dtype=torch.float64).reshape(-1, pts.shape[-1])
                out = ((p < lo - slack) | (p > hi + slack)).any(dim=1)
                if bool(out.any()):
                    n, first = int(out.sum()), p[out.nonzero()[0, 0]].tolist()
                    msg = (f"term {t.name!r}: {n} point(s) lie outside the box lower={list(self.lower)}, "
                           f"upper={list(self.upper)} (first: {first}); the network scales inputs with this box")
                    if self.points_outside == "error":
                        raise ValueError(msg)
                    warnings.warn(msg + " (points_outside='error' refuses, 'ignore' is silent)", UserWarning,
                                  stacklevel=4)

    @property
    def term_names(self) -> list[str]:
        return [t.name for t in self.terms]

    def network(self, *, dtype: torch.dtype = torch.float32, device: Union[str, torch.device, None] = None,
                init: Optional[str] = None, **options: Any) -> Any:
        """A fresh network for this problem, seeded like its points (an ensemble for stacked problems): its
        :attr:`architecture` (default :class:`~fastpinn.MLP`) with the problem's shape and box. ``init``: see
        :data:`fastpinn.network.INITS` (``None``: the architecture's own, Glorot normal for an MLP);
        ``options``: more keyword arguments of the architecture, overriding its own. Inputs are scaled from the
        box onto ``[-1, 1]``, or passed raw without ``input_scaling``."""
        seed = list(self.seeds) if self.ensemble is not None else self.seeds[0]
        # the identity map (scale 1, shift 0, exactly) is the box [-1, 1]
        lower, upper = (self.lower, self.upper) if self.input_scaling else (-1.0, 1.0)
        build = MLP if self.architecture is None else self.architecture
        if init is not None:
            options["init"] = init
        if self.ensemble is not None:  # only then: a single-network architecture need not take ensemble=
            options["ensemble"] = self.ensemble
        return build(len(self.coords), self.out_dim, self.depth, self.width, lower, upper,
                     seed=seed, dtype=dtype, device=device, **options)

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact/reference solution on the evaluation grid: points ``X[M, d]`` (columns in ``coords``
        order) and values ``U[M]`` (``[M, out]`` for a vector solution). Raises if the problem has none."""
        if self.solution is None:
            raise ValueError(f"problem {self.name!r} has no reference solution")
        return self.solution()

    def to(self, device: Union[str, torch.device, None] = None, dtype: Optional[torch.dtype] = None) -> "Problem":
        return replace(self, terms=[t.to(device, dtype) for t in self.terms])


def stack(problems: Sequence[Problem]) -> Problem:
    """Stack single-network problems (same terms, different seeds) into one ensemble problem with points
    ``[S, N, d]``; member ``s`` trains exactly as ``problems[s]`` would alone."""
    if not problems:
        raise ValueError("stack needs at least one problem")
    first = problems[0]
    if any(p.ensemble is not None for p in problems):
        raise ValueError("stack takes single-network problems (points [N, d])")
    terms = []
    for k, t in enumerate(first.terms):
        parts = [p.terms[k] for p in problems]
        pts = tuple(torch.stack([q.points[i] for q in parts]) for i in range(len(t.points)))
        tg = None if t.targets is None else torch.stack([q.targets for q in parts])
        terms.append(replace(t, points=pts, targets=tg))
    seeds = tuple(p.seeds[0] for p in problems)
    return replace(first, terms=terms, seeds=seeds, ensemble=len(problems))


#: A problem factory's ``seed``: one int (one network) or a sequence of them (an ensemble).
Seed = Union[int, Sequence[int]]


def ensemble_of(factory: Callable[..., Problem], seed: Seed, **kwargs: Any) -> Optional[Problem]:
    """``None`` for one integer ``seed``; for a sequence of seeds the ensemble problem (:func:`stack`) of
    ``factory(s, **kwargs)`` per seed (points ``[S, N, d]``). A factory starts with
    ``ens = ensemble_of(factory, seed, ...); if ens is not None: return ens``."""
    if isinstance(seed, numbers.Integral):
        return None
    try:
        seeds = [int(s) for s in seed]
    except TypeError:
        raise ValueError(f"seed must be an int or a sequence of ints, got {seed!r}") from None
    if not seeds:
        raise ValueError("seed must be an int or a non-empty sequence of ints")
    return stack([factory(s, **kwargs) for s in seeds])
