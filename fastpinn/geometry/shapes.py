"""Primitive shapes: boxes (Interval, Rectangle, Box), balls (Disk, Ball, NBall), Ellipse, Polygon, Triangle.

Each gives its signed distance (exact except the ellipse's first-order estimate), outward normals, closed-form
measures, and maps from the unit cube that are uniform on its interior and boundary (a polygon's interior is
sampled by rejection from its box).
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch
from torch import Tensor

from ..validation import check_number
from .base import Domain, as_points
from .time import TimeDomain

__all__ = ["Box", "Rectangle", "Interval", "NBall", "Disk", "Ball", "Ellipse", "Polygon", "Triangle"]

_EPS = 1e-12  # keeps unit-cube coordinates off 0 and 1 where a map has a singularity there


def _vector(name: str, v: Sequence[float], d: int | None = None) -> Tensor:
    t = torch.as_tensor(v, dtype=torch.float64).flatten()
    if (d is not None and t.numel() != d) or t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be {d if d else 'one or more'} finite numbers, got {v!r}")
    return t


class Box(Domain):
    """The box ``[lower, upper]`` in any dimension (``lower < upper`` in every coordinate)."""

    def __init__(self, lower: Sequence[float], upper: Sequence[float]) -> None:
        self.lower = _vector("lower", lower)
        self.upper = _vector("upper", upper, self.lower.numel())
        if not bool((self.upper > self.lower).all()):
            raise ValueError(f"a box needs lower < upper in every coordinate, got {lower} and {upper}")
        self.dim = self.interior_params = self.boundary_params = self.lower.numel()
        side = self.upper - self.lower
        # face k (k < d: coordinate k at lower, k >= d: at upper) has the area of the other sides' product
        self._faces = torch.cat([side.prod() / side] * 2)

    @property
    def bbox(self):
        return tuple(self.lower.tolist()), tuple(self.upper.tolist())

    @property
    def measure(self) -> float:
        return float((self.upper - self.lower).prod())

    @property
    def boundary_measure(self) -> float:
        return float(self._faces.sum())

    def _q(self, x: Tensor) -> Tensor:
        return (x - (self.lower + self.upper) / 2).abs() - (self.upper - self.lower) / 2

    def signed_distance(self, x: Tensor) -> Tensor:
        q = self._q(as_points(x, self.dim))
        return q.clamp(min=0).norm(dim=1) + q.max(dim=1).values.clamp(max=0)

    def boundary_normal(self, x: Tensor) -> Tensor:
        x = as_points(x, self.dim)
        k = self._q(x).argmax(dim=1)
        n = torch.zeros_like(x)
        side = torch.sign(x - (self.lower + self.upper) / 2).gather(1, k[:, None])
        n.scatter_(1, k[:, None], torch.where(side == 0, 1.0, side))
        return n

    def map_boundary(self, u: Tensor) -> Tensor:
        d = self.dim
        cum = torch.cumsum(self._faces, 0) / self._faces.sum()
        face = torch.searchsorted(cum, u[:, 0].contiguous(), right=True).clamp(max=2 * d - 1)
        k = face % d
        # the other coordinates of a face point: u[:, 1:] spread over the d - 1 free coordinates
        free = torch.cat([u[:, 1:], u[:, :1]], dim=1)  # column d-1 is never read as a free coordinate
        order = (torch.arange(d)[None, :] - k[:, None] - 1) % d  # coordinate j reads free column (j-k-1) mod d
        t = free.gather(1, order)
        x = self.lower + (self.upper - self.lower) * t
        end = torch.where(face < d, self.lower[k], self.upper[k])
        x[torch.arange(len(k)), k] = end
        return x


class Rectangle(Box):
    """The rectangle ``[x0, x1] x [y0, y1]`` given as ``Rectangle((x0, y0), (x1, y1))``."""

    def __init__(self, lower: Sequence[float], upper: Sequence[float]) -> None:
        super().__init__(lower, upper)
        if self.dim != 2:
            raise ValueError(f"a rectangle has 2 coordinates, got lower={lower}; use Box for other dimensions")


class Interval(Box):
    """The interval ``[a, b]``; ``domain * Interval(t0, t1)`` is a space-time domain (time last)."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__([check_number("a", a)], [check_number("b", b)])

    def __rmul__(self, space: Domain) -> TimeDomain:
        if not isinstance(space, Domain):
            return NotImplemented
        return TimeDomain(space, float(self.lower), float(self.upper))

    def __mul__(self, time: Domain) -> TimeDomain:
        # Python never tries __rmul__ when both operands have the same type: Interval(-1, 1) * Interval(0, 1),
        # the 1-D space-time domain, comes here.
        if not isinstance(time, Interval):
            return NotImplemented
        return TimeDomain(self, float(time.lower), float(time.upper))


def _gaussian(u: Tensor) -> Tensor:
    return math.sqrt(2.0) * torch.erfinv(2 * u.clamp(_EPS, 1 - _EPS) - 1)


class NBall(Domain):
    """The closed ball ``|x - center| <= radius`` in any dimension ``d >= 2``."""

    def __init__(self, center: Sequence[float], radius: float) -> None:
        self.center = _vector("center", center)
        self.radius = check_number("radius", radius, minimum=0.0, low_open=True)
        self.dim = self.center.numel()
        if self.dim < 2:
            raise ValueError("an NBall needs d >= 2 coordinates (an Interval is the 1-D ball)")
        # the disk in polar coordinates (2 parameters); else d Gaussians for the direction and one radius
        self.boundary_params = 1 if self.dim == 2 else self.dim
        self.interior_params = self.boundary_params + 1

    @property
    def bbox(self):
        return tuple((self.center - self.radius).tolist()), tuple((self.center + self.radius).tolist())

    @property
    def measure(self) -> float:
        d = self.dim
        return math.pi ** (d / 2) / math.gamma(d / 2 + 1) * self.radius ** d

    @property
    def boundary_measure(self) -> float:
        d = self.dim
        return 2 * math.pi ** (d / 2) / math.gamma(d / 2) * self.radius ** (d - 1)

    def signed_distance(self, x: Tensor) -> Tensor:
        return (as_points(x, self.dim) - self.center).norm(dim=1) - self.radius

    def boundary_normal(self, x: Tensor) -> Tensor:
        v = as_points(x, self.dim) - self.center
        return v / v.norm(dim=1, keepdim=True).clamp(min=1e-300)

    def _direction(self, u: Tensor) -> Tensor:
        if self.dim == 2:
            a = 2 * math.pi * u[:, 0]
            return torch.stack([torch.cos(a), torch.sin(a)], dim=1)
        g = _gaussian(u)
        return g / g.norm(dim=1, keepdim=True)

    def map_boundary(self, u: Tensor) -> Tensor:
        return self.center + self.radius * self._direction(u)

    def map_interior(self, u: Tensor) -> Tensor:
        r = self.radius * u[:, -1:] ** (1.0 / self.dim)  # P(|x| < r) = (r / R)^d
        return self.center + r * self._direction(u[:, :-1])


class Disk(NBall):
    """The closed disk ``|x - center| <= radius`` in the plane."""

    def __init__(self, center: Sequence[float], radius: float) -> None:
        super().__init__(_vector("center", center, 2), radius)


class Ball(NBall):
    """The closed ball ``|x - center| <= radius`` in 3-D."""

    def __init__(self, center: Sequence[float], radius: float) -> None:
        super().__init__(_vector("center", center, 3), radius)


class Ellipse(Domain):
    """The axis-aligned ellipse ``((x - cx) / a)^2 + ((y - cy) / b)^2 <= 1``.

    Its signed distance is the first-order estimate ``g / |grad g|`` (exact zero set and sign); boundary points
    are uniform in arc length through a tabulated arc-length map.
    """

    dim = 2
    interior_params = 2
    boundary_params = 1
    _TABLE = 8192

    def __init__(self, center: Sequence[float], a: float, b: float) -> None:
        self.center = _vector("center", center, 2)
        self.axes = torch.tensor([check_number("a", a, minimum=0.0, low_open=True),
                                  check_number("b", b, minimum=0.0, low_open=True)], dtype=torch.float64)
        theta = torch.linspace(0, 2 * math.pi, self._TABLE + 1, dtype=torch.float64)
        speed = torch.hypot(self.axes[0] * torch.sin(theta), self.axes[1] * torch.cos(theta))
        arc = torch.cat([torch.zeros(1, dtype=torch.float64),
                         torch.cumsum((speed[1:] + speed[:-1]) / 2 * (theta[1] - theta[0]), 0)])
        self._theta, self._arc = theta, arc

    @property
    def bbox(self):
        return tuple((self.center - self.axes).tolist()), tuple((self.center + self.axes).tolist())

    @property
    def measure(self) -> float:
        return math.pi * float(self.axes.prod())

    @property
    def boundary_measure(self) -> float:
        return float(self._arc[-1])

    def _g(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = (as_points(x, 2) - self.center) / self.axes
        return y.pow(2).sum(1) - 1, 2 * y / self.axes

    def signed_distance(self, x: Tensor) -> Tensor:
        g, grad = self._g(x)
        # |grad g| >= 2 / max(a, b) on the boundary; the floor (half that) only acts near the centre, where the
        # gradient vanishes
        return g / grad.norm(dim=1).clamp(min=1 / float(self.axes.max()))

    def boundary_normal(self, x: Tensor) -> Tensor:
        _, grad = self._g(x)
        return grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-300)

    def _point(self, theta: Tensor, r: Union[Tensor, float] = 1.0) -> Tensor:
        return self.center + r * self.axes * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)

    def map_boundary(self, u: Tensor) -> Tensor:
        s = u[:, 0].contiguous() * self._arc[-1]
        i = torch.searchsorted(self._arc, s, right=True).clamp(1, self._TABLE)
        w = (s - self._arc[i - 1]) / (self._arc[i] - self._arc[i - 1])
        return self._point(self._theta[i - 1] + w * (self._theta[i] - self._theta[i - 1]))

    def map_interior(self, u: Tensor) -> Tensor:
        return self._point(2 * math.pi * u[:, 0], u[:, 1:2].sqrt())


class Polygon(Domain):
    """A simple polygon (no self-intersections) from its vertices ``[V, 2]`` in either orientation, e.g. the
    L-shape ``Polygon([(-1, -1), (1, -1), (1, 0), (0, 0), (0, 1), (-1, 1)])``."""

    dim = 2
    interior_params = 2
    boundary_params = 1

    def __init__(self, vertices: Sequence[Sequence[float]]) -> None:
        v = torch.as_tensor(vertices, dtype=torch.float64)
        if v.dim() != 2 or v.shape[1] != 2 or v.shape[0] < 3 or not bool(torch.isfinite(v).all()):
            raise ValueError(f"vertices must be at least 3 finite points [V, 2], got shape {list(v.shape)}")
        if bool((v[0] == v[-1]).all()):
            v = v[:-1]  # a closed list repeats the first vertex
        nxt = torch.roll(v, -1, 0)
        area2 = float((v[:, 0] * nxt[:, 1] - nxt[:, 0] * v[:, 1]).sum())
        if abs(area2) == 0.0:
            raise ValueError("vertices enclose no area")
        if area2 < 0:
            v = v.flip(0)  # counter-clockwise, so the outward normal of an edge (dx, dy) is (dy, -dx)
        self.vertices = v
        self._a, self._e = v, torch.roll(v, -1, 0) - v
        lengths = self._e.norm(dim=1)
        if bool((lengths == 0).any()):
            raise ValueError("vertices must not repeat consecutively")
        if self._crossing_edges():
            raise ValueError("vertices must form a simple polygon (two of its edges cross)")
        self._len = lengths
        self._cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(lengths, 0)])
        self._normal = torch.stack([self._e[:, 1], -self._e[:, 0]], dim=1) / lengths[:, None]
        self._area = abs(area2) / 2

    def _crossing_edges(self) -> bool:
        """Whether two non-adjacent edges cross (a proper crossing: each separates the other's ends)."""
        a, e = self._a, self._e
        b = a + e

        def side(p: Tensor, q: Tensor, r: Tensor) -> Tensor:  # sign of (q - p) x (r - p), for every edge pair
            u, v = q - p, r - p
            return torch.sign(u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0])

        pa, pb, qa, qb = a[:, None], b[:, None], a[None], b[None]
        crosses = (side(pa, pb, qa) * side(pa, pb, qb) < 0) & (side(qa, qb, pa) * side(qa, qb, pb) < 0)
        i = torch.arange(len(a))
        gap = (i[:, None] - i[None]).abs()
        return bool((crosses & (gap > 1) & (gap < len(a) - 1)).any())

    @property
    def bbox(self):
        return tuple(self.vertices.min(0).values.tolist()), tuple(self.vertices.max(0).values.tolist())

    @property
    def measure(self) -> float:
        return self._area

    @property
    def boundary_measure(self) -> float:
        return float(self._cum[-1])

    def _edge_distance(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Distances ``[N]`` to the nearest edge and its index ``[N]``."""
        rel = x[:, None, :] - self._a[None]  # [N, E, 2]
        t = ((rel * self._e).sum(-1) / self._len.pow(2)).clamp(0, 1)
        dist = (rel - t[..., None] * self._e).norm(dim=-1)
        return dist.min(dim=1)

    def _inside(self, x: Tensor) -> Tensor:
        """Even-odd rule: a ray to +x crosses the boundary an odd number of times."""
        a, b = self._a, self._a + self._e
        y = x[:, 1:2]
        straddles = (a[:, 1] > y) != (b[:, 1] > y)
        xc = a[:, 0] + (y - a[:, 1]) * self._e[:, 0] / torch.where(self._e[:, 1] == 0, 1.0, self._e[:, 1])
        return ((straddles & (x[:, :1] < xc)).sum(1) % 2) == 1

    def signed_distance(self, x: Tensor) -> Tensor:
        x = as_points(x, 2)
        dist, _ = self._edge_distance(x)
        return torch.where(self._inside(x), -dist, dist)

    def boundary_normal(self, x: Tensor) -> Tensor:
        _, edge = self._edge_distance(as_points(x, 2))
        return self._normal[edge]

    def map_boundary(self, u: Tensor) -> Tensor:
        s = u[:, 0].contiguous() * self._cum[-1]
        i = (torch.searchsorted(self._cum, s, right=True) - 1).clamp(0, len(self._len) - 1)
        return self._a[i] + ((s - self._cum[i]) / self._len[i])[:, None] * self._e[i]


class Triangle(Polygon):
    """The triangle with vertices ``p0, p1, p2``."""

    def __init__(self, p0: Sequence[float], p1: Sequence[float], p2: Sequence[float]) -> None:
        super().__init__([p0, p1, p2])
