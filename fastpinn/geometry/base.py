"""The Domain interface, its samplers, boundary subsets and constructive solid geometry (``|``, ``&``, ``-``).

Every domain is a closed set in R^d described by a signed distance ``phi(x)`` (negative inside, zero on
the boundary; the exact distance for most shapes, a first-order estimate where no closed form exists) and
by maps from the unit cube onto its interior and boundary. Sampling draws unit-cube points
(:class:`~fastpinn.geometry.cube.CubeStream`), maps them, and keeps those that land where they should:
inside, on the boundary, and in the ``where`` subset. For a union, intersection or difference the boundary
candidates come from every primitive's boundary in proportion to its length/area, and those on the final
boundary are kept, so boundary points are uniform in arc length/area. (A face shared by two pieces of a
union counts as boundary: ``phi`` is zero there.)

Points are ``[N, d]`` tensors. Samplers return float64 by default (``dtype=torch.float32`` on request);
geometry is computed in float64 whatever the input dtype.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable, Optional

import torch
from torch import Tensor

from ..validation import check_int
from .cube import CubeStream

__all__ = ["Domain", "BoundarySubset", "Union", "Intersection", "Difference", "Predicate"]

Predicate = Callable[[Tensor], Tensor]

# Rejection sampling gives up when, after this many candidates, fewer than this fraction were kept.
_MIN_CANDIDATES = 20_000
_MIN_ACCEPTANCE = 1e-4


def as_points(x: Tensor, d: int, name: str = "x") -> Tensor:
    """``x`` as float64 ``[N, d]`` (a ValueError naming the shape otherwise)."""
    x = torch.as_tensor(x)
    if x.dim() != 2 or x.shape[1] != d:
        raise ValueError(f"{name} must have shape [N, {d}], got {list(x.shape)}")
    return x.to(torch.float64)


class Domain(ABC):
    """A closed domain in R^d. Subclasses give ``dim``, ``bbox``, :meth:`signed_distance`,
    :meth:`boundary_normal` and the unit-cube maps (:meth:`map_interior`, :meth:`map_boundary`)."""

    dim: int
    interior_params: int  # unit-cube coordinates map_interior reads
    boundary_params: int  # unit-cube coordinates map_boundary reads

    # -- what a shape defines -------------------------------------------------------------------------------
    @property
    @abstractmethod
    def bbox(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(lower, upper)``: a box holding the domain."""

    @abstractmethod
    def signed_distance(self, x: Tensor) -> Tensor:
        """``phi(x)`` ``[N]`` for points ``[N, d]``: negative inside, zero on the boundary, positive outside."""

    @abstractmethod
    def boundary_normal(self, x: Tensor) -> Tensor:
        """Outward unit normals ``[N, d]`` at boundary points ``[N, d]`` (the nearest piece's elsewhere)."""

    def map_interior(self, u: Tensor) -> Tensor:
        """Candidates ``[m, d]`` from unit-cube points ``[m, interior_params]``; default: the bbox."""
        lo, hi = (torch.tensor(b, dtype=torch.float64) for b in self.bbox)
        return lo + (hi - lo) * u

    @abstractmethod
    def map_boundary(self, u: Tensor) -> Tensor:
        """Candidates ``[m, d]`` from unit-cube points ``[m, boundary_params]``, uniform in length/area."""

    @property
    def measure(self) -> float:
        """Length/area/volume in closed form (NotImplementedError where there is none)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form measure; use estimate_measure")

    @property
    def boundary_measure(self) -> float:
        """Length/area of the boundary in closed form (for a 1-D domain: the number of end points)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form boundary measure")

    # -- derived ----------------------------------------------------------------------------------------
    @property
    def diameter(self) -> float:
        lo, hi = self.bbox
        return math.sqrt(sum((b - a) ** 2 for a, b in zip(lo, hi)))

    @property
    def sampling_tol(self) -> float:
        """How far from the boundary a sampled boundary candidate may be (rounding only)."""
        return 1e-9 * max(1.0, self.diameter)

    def contains(self, x: Tensor, tol: float = 0.0) -> Tensor:
        """``bool[N]``: which points ``[N, d]`` lie in the closed domain (within ``tol``)."""
        return self.signed_distance(as_points(x, self.dim)) <= tol

    def on_boundary(self, x: Tensor, tol: float = 1e-6) -> Tensor:
        """``bool[N]``: which points ``[N, d]`` lie within ``tol`` of the boundary."""
        return self.signed_distance(as_points(x, self.dim)).abs() <= tol

    def sample_interior(self, n: int, method: str = "uniform", generator: Optional[torch.Generator] = None, *,
                        where: Optional[Predicate] = None, dtype: torch.dtype = torch.float64) -> Tensor:
        """``n`` points ``[n, d]`` in the domain (and in ``where``, a predicate ``[m, d] -> bool[m]``)."""
        return self._collect(n, method, generator, self.interior_params, self.map_interior,
                             lambda x: self.contains(x), where, dtype, "interior")

    def sample_boundary(self, n: int, method: str = "uniform", generator: Optional[torch.Generator] = None, *,
                        where: Optional[Predicate] = None, dtype: torch.dtype = torch.float64) -> Tensor:
        """``n`` points ``[n, d]`` on the boundary, uniform in length/area; ``where``: keep only the points
        where the predicate ``[m, d] -> bool[m]`` holds (e.g. ``lambda x: x[:, 0] == 0``)."""
        return self._collect(n, method, generator, self.boundary_params, self.map_boundary,
                             lambda x: self.on_boundary(x, self.sampling_tol), where, dtype, "boundary")

    def boundary_subset(self, where: Predicate) -> "BoundarySubset":
        """The part of the boundary where ``where`` holds, with its own sampler and normals."""
        return BoundarySubset(self, where)

    def estimate_measure(self, n: int = 100_000, generator: Optional[torch.Generator] = None) -> tuple[float, float]:
        """Monte Carlo ``(measure, standard error)``: the bbox's volume times the fraction of ``n`` uniform
        bbox points inside (binomial standard error)."""
        n = check_int("n", n, minimum=1)
        lo, hi = self.bbox
        box = math.prod(b - a for a, b in zip(lo, hi))
        u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64)
        p = float(self.contains(Domain.map_interior(self, u)).double().mean())
        return box * p, box * math.sqrt(p * (1 - p) / n)

    def _collect(self, n: int, method: str, generator: Optional[torch.Generator], params: int,
                 mapper: Callable[[Tensor], Tensor], keep: Predicate, where: Optional[Predicate],
                 dtype: torch.dtype, what: str) -> Tensor:
        n = check_int("n", n, minimum=1)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        stream = CubeStream(method, params, generator)
        kept: list[Tensor] = []
        got = drawn = 0
        while got < n:
            rate = got / drawn if got else None
            m = n if drawn == 0 else min(2_000_000, math.ceil(1.2 * (n - got) / rate) + 64 if rate else 4 * drawn)
            x = mapper(stream.draw(m))
            ok = keep(x)
            if where is not None:
                sel = torch.as_tensor(where(x))
                if sel.shape != (m,) or sel.dtype != torch.bool:
                    raise ValueError(f"where must map points [m, {self.dim}] to a bool tensor [m], "
                                     f"got {sel.dtype} {list(sel.shape)}")
                ok = ok & sel
            kept.append(x[ok])
            got += int(ok.sum())
            drawn += m
            if got < n and drawn >= _MIN_CANDIDATES and got < _MIN_ACCEPTANCE * drawn:
                raise ValueError(
                    f"{type(self).__name__}.sample_{what}: only {got} of {drawn} candidate points were accepted; "
                    f"the {what}{' subset chosen by where' if where is not None else ''} is empty or too thin "
                    "for rejection sampling")
        return torch.cat(kept)[:n].to(dtype)

    # -- constructive solid geometry --------------------------------------------------------------------------
    def __or__(self, other: "Domain") -> "Union":
        return Union(self, other)

    def __and__(self, other: "Domain") -> "Intersection":
        return Intersection(self, other)

    def __sub__(self, other: "Domain") -> "Difference":
        return Difference(self, other)

    def primitives(self) -> list["Domain"]:
        """The shapes this domain is built from (itself for a shape)."""
        return [self]


class BoundarySubset:
    """The part of ``domain``'s boundary where ``where(x)`` holds (e.g. the circle of a square minus a disk)."""

    def __init__(self, domain: Domain, where: Predicate) -> None:
        if not callable(where):
            raise ValueError(f"where must be a callable [m, d] -> bool[m], got {type(where).__name__}")
        self.domain, self.where, self.dim = domain, where, domain.dim

    def sample_boundary(self, n: int, method: str = "uniform", generator: Optional[torch.Generator] = None, *,
                        dtype: torch.dtype = torch.float64) -> Tensor:
        """``n`` points ``[n, d]`` of this subset, uniform in length/area."""
        return self.domain.sample_boundary(n, method, generator, where=self.where, dtype=dtype)

    def on_boundary(self, x: Tensor, tol: float = 1e-6) -> Tensor:
        x = as_points(x, self.dim)
        return self.domain.on_boundary(x, tol) & torch.as_tensor(self.where(x))

    def boundary_normal(self, x: Tensor) -> Tensor:
        return self.domain.boundary_normal(x)


def _check_pair(a: Domain, b: Domain, op: str) -> None:
    for d in (a, b):
        if not isinstance(d, Domain):
            raise ValueError(f"{op} combines geometry domains, got {type(d).__name__}")
    if a.dim != b.dim:
        raise ValueError(f"{op} needs domains of the same dimension, got {a.dim} and {b.dim}")


class _Combination(Domain):
    """Shared by union, intersection and difference: ``phi = combine(phi_a, phi_b)`` and the normal of the
    piece whose ``phi`` is the combined one."""

    op = ""

    def __init__(self, a: Domain, b: Domain) -> None:
        _check_pair(a, b, self.op)
        self.a, self.b, self.dim = a, b, a.dim
        self.interior_params = self.dim
        leaves = self.primitives()
        for leaf in leaves:
            if type(leaf).boundary_measure is Domain.boundary_measure:
                raise ValueError(f"{self.op}: {type(leaf).__name__} cannot be combined (no boundary measure)")
        self._weights = torch.tensor([leaf.boundary_measure for leaf in leaves], dtype=torch.float64)
        self.boundary_params = 1 + max(leaf.boundary_params for leaf in leaves)

    def primitives(self) -> list[Domain]:
        return self.a.primitives() + self.b.primitives()

    @abstractmethod
    def _pick_a(self, pa: Tensor, pb: Tensor) -> Tensor:
        """``bool[N]``: where the combined ``phi`` is ``a``'s (else ``b``'s, or ``-b``'s for a difference)."""

    def _b_sign(self) -> float:
        return 1.0

    def signed_distance(self, x: Tensor) -> Tensor:
        x = as_points(x, self.dim)
        pa, pb = self.a.signed_distance(x), self.b.signed_distance(x) * self._b_sign()
        return torch.where(self._pick_a(pa, pb), pa, pb)

    def boundary_normal(self, x: Tensor) -> Tensor:
        x = as_points(x, self.dim)
        pa, pb = self.a.signed_distance(x), self.b.signed_distance(x) * self._b_sign()
        na, nb = self.a.boundary_normal(x), self.b.boundary_normal(x) * self._b_sign()
        return torch.where(self._pick_a(pa, pb)[:, None], na, nb)

    def map_boundary(self, u: Tensor) -> Tensor:
        leaves = self.primitives()
        cum = torch.cumsum(self._weights, 0) / self._weights.sum()
        which = torch.searchsorted(cum, u[:, 0].contiguous(), right=True).clamp(max=len(leaves) - 1)
        x = torch.empty(u.shape[0], self.dim, dtype=torch.float64)
        for i, leaf in enumerate(leaves):
            rows = (which == i).nonzero().flatten()
            if rows.numel():
                x[rows] = leaf.map_boundary(u[rows, 1:1 + leaf.boundary_params])
        return x


class Union(_Combination):
    """Points in ``a`` or ``b`` (``a | b``)."""

    op = "union"

    def _pick_a(self, pa: Tensor, pb: Tensor) -> Tensor:
        return pa <= pb

    @property
    def bbox(self):
        (la, ua), (lb, ub) = self.a.bbox, self.b.bbox
        return tuple(map(min, la, lb)), tuple(map(max, ua, ub))


class Intersection(_Combination):
    """Points in both ``a`` and ``b`` (``a & b``)."""

    op = "intersection"

    def _pick_a(self, pa: Tensor, pb: Tensor) -> Tensor:
        return pa >= pb

    @property
    def bbox(self):
        (la, ua), (lb, ub) = self.a.bbox, self.b.bbox
        lo, hi = tuple(map(max, la, lb)), tuple(map(min, ua, ub))
        if any(h < l for l, h in zip(lo, hi)):
            raise ValueError("intersection: the two domains' boxes do not overlap, so it is empty")
        return lo, hi


class Difference(_Combination):
    """Points in ``a`` and not inside ``b`` (``a - b``); on ``b``'s boundary the normal points into ``b``."""

    op = "difference"

    def _b_sign(self) -> float:
        return -1.0

    def _pick_a(self, pa: Tensor, pb: Tensor) -> Tensor:
        return pa >= pb

    @property
    def bbox(self):
        return self.a.bbox
