"""Space-time domains: a spatial domain times a time interval, ``domain * Interval(t0, t1)``.

Points are ``[N, d + 1]`` with time as the last column (``time_first=True``: the first, as in the built-in
problems' ``("t", "x")``). The boundary is the lateral one, ``boundary(space) x [t0, t1]`` (where boundary
conditions hold); the initial slice ``space x {t0}`` has its own sampler, :meth:`TimeDomain.sample_initial`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..validation import check_flag, check_number
from .base import Domain, Predicate, as_points

__all__ = ["TimeDomain"]


class TimeDomain(Domain):
    """``space x [t0, t1]``; normals on the lateral boundary are ``(n_space, 0)``."""

    def __init__(self, space: Domain, t0: float, t1: float, *, time_first: bool = False) -> None:
        if not isinstance(space, Domain) or isinstance(space, TimeDomain):
            raise ValueError(f"space must be a spatial geometry domain, got {type(space).__name__}")
        self.space = space
        self.t0 = check_number("t0", t0)
        self.t1 = check_number("t1", t1, minimum=self.t0, low_open=True, hint=" (t1 > t0)")
        self.time_first = check_flag("time_first", time_first)
        self.dim = space.dim + 1
        self.interior_params = space.interior_params + 1
        self.boundary_params = space.boundary_params + 1

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = as_points(x, self.dim)
        return (x[:, 1:], x[:, 0]) if self.time_first else (x[:, :-1], x[:, -1])

    def _join(self, xs: Tensor, t: Tensor) -> Tensor:
        parts = [t[:, None], xs] if self.time_first else [xs, t[:, None]]
        return torch.cat(parts, dim=1)

    @property
    def bbox(self):
        lo, hi = self.space.bbox
        if self.time_first:
            return (self.t0,) + tuple(lo), (self.t1,) + tuple(hi)
        return tuple(lo) + (self.t0,), tuple(hi) + (self.t1,)

    @property
    def measure(self) -> float:
        return self.space.measure * (self.t1 - self.t0)

    def signed_distance(self, x: Tensor) -> Tensor:
        xs, t = self._split(x)
        dt = torch.maximum(self.t0 - t, t - self.t1)
        return torch.maximum(self.space.signed_distance(xs), dt)

    def on_boundary(self, x: Tensor, tol: float = 1e-6) -> Tensor:
        """``bool[N]``: on the lateral boundary ``boundary(space) x [t0, t1]`` within ``tol``."""
        xs, t = self._split(x)
        return self.space.on_boundary(xs, tol) & (t >= self.t0 - tol) & (t <= self.t1 + tol)

    def boundary_normal(self, x: Tensor) -> Tensor:
        xs, t = self._split(x)
        return self._join(self.space.boundary_normal(xs), torch.zeros_like(t))

    def _time(self, u: Tensor) -> Tensor:
        return self.t0 + (self.t1 - self.t0) * u

    def map_interior(self, u: Tensor) -> Tensor:
        return self._join(self.space.map_interior(u[:, :-1]), self._time(u[:, -1]))

    def map_boundary(self, u: Tensor) -> Tensor:
        return self._join(self.space.map_boundary(u[:, :-1]), self._time(u[:, -1]))

    def sample_initial(self, n: int, method: str = "uniform", generator: Optional[torch.Generator] = None, *,
                       where: Optional[Predicate] = None, dtype: torch.dtype = torch.float64) -> Tensor:
        """``n`` points ``[n, d + 1]`` of the initial slice: space interior points at ``t = t0``."""

        def mapper(u: Tensor) -> Tensor:
            xs = self.space.map_interior(u)
            return self._join(xs, torch.full((xs.shape[0],), self.t0, dtype=torch.float64))

        return self._collect(n, method, generator, self.space.interior_params, mapper,
                             lambda x: self.space.contains(self._split(x)[0]), where, dtype, "initial")
