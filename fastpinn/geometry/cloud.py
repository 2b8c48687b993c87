"""Point clouds: a domain given by points (and boundary points with their normals) rather than a shape."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .base import Predicate, as_points

__all__ = ["PointCloud"]


def _unit(name: str, normals: Tensor, points: Tensor) -> Tensor:
    n = torch.as_tensor(normals, dtype=torch.float64)
    if n.shape != points.shape:
        raise ValueError(f"{name} must have the shape of its points {list(points.shape)}, got {list(n.shape)}")
    length = n.norm(dim=1, keepdim=True)
    if not bool((length > 0).all() and torch.isfinite(length).all()):
        raise ValueError(f"{name} must be finite and non-zero")
    return n / length


class PointCloud:
    """A domain known by its points: ``points`` ``[N, d]`` (interior), ``boundary_points`` ``[M, d]`` with
    ``boundary_normals`` ``[M, d]`` (outward; normalised here). ``normals`` given without ``boundary_points``
    makes ``points`` a boundary cloud (e.g. a scanned surface) with those normals.

    Sampling picks ``n`` distinct points of the cloud at random (all of them for ``n=None``); the normal of a
    point is that of the nearest boundary point.
    """

    def __init__(self, points: Tensor, normals: Optional[Tensor] = None, boundary_points: Optional[Tensor] = None,
                 boundary_normals: Optional[Tensor] = None) -> None:
        pts = torch.as_tensor(points, dtype=torch.float64)
        if pts.dim() != 2 or pts.shape[0] == 0 or not bool(torch.isfinite(pts).all()):
            raise ValueError(f"points must be finite, shape [N, d] with N >= 1, got {list(pts.shape)}")
        self.dim = pts.shape[1]
        if normals is not None and boundary_points is not None:
            raise ValueError("give normals (points are a boundary cloud) or boundary_points, not both")
        if normals is not None:
            boundary_points, boundary_normals = pts, normals
        self.points = pts
        self.boundary_points = None if boundary_points is None else as_points(boundary_points, self.dim,
                                                                                "boundary_points")
        if self.boundary_points is not None and boundary_normals is None:
            raise ValueError("boundary_points need boundary_normals [M, d]")
        self.boundary_normals = None if boundary_normals is None else _unit("boundary_normals", boundary_normals,
                                                                              self.boundary_points)

    @property
    def bbox(self):
        every = self.points if self.boundary_points is None else torch.cat([self.points, self.boundary_points])
        return tuple(every.min(0).values.tolist()), tuple(every.max(0).values.tolist())

    def _pick(self, cloud: Optional[Tensor], n: Optional[int], generator: Optional[torch.Generator],
              where: Optional[Predicate], dtype: torch.dtype, what: str) -> Tensor:
        if cloud is None:
            raise ValueError("this point cloud has no boundary points (give boundary_points and boundary_normals)")
        if where is not None:
            cloud = cloud[torch.as_tensor(where(cloud), dtype=torch.bool)]
        if n is None:
            return cloud.to(dtype)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= cloud.shape[0]:
            raise ValueError(f"n must be None or an integer in [1, {cloud.shape[0]}] (the {what} points), got {n!r}")
        return cloud[torch.randperm(cloud.shape[0], generator=generator)[:n]].to(dtype)

    def sample_interior(self, n: Optional[int] = None, method: str = "uniform",
                        generator: Optional[torch.Generator] = None, *, where: Optional[Predicate] = None,
                        dtype: torch.dtype = torch.float64) -> Tensor:
        """``n`` of the cloud's points ``[n, d]`` (``method`` must be ``"uniform"``: a cloud is already drawn)."""
        self._check_method(method)
        return self._pick(self.points, n, generator, where, dtype, "interior")

    def sample_boundary(self, n: Optional[int] = None, method: str = "uniform",
                        generator: Optional[torch.Generator] = None, *, where: Optional[Predicate] = None,
                        dtype: torch.dtype = torch.float64) -> Tensor:
        """``n`` of the boundary points ``[n, d]``."""
        self._check_method(method)
        return self._pick(self.boundary_points, n, generator, where, dtype, "boundary")

    @staticmethod
    def _check_method(method: str) -> None:
        if method != "uniform":
            raise ValueError(f"method must be 'uniform' for a point cloud (its points are given), got {method!r}")

    def _nearest(self, cloud: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        d = torch.cdist(as_points(x, self.dim), cloud)
        return d.min(dim=1)

    def contains(self, x: Tensor, tol: float = 1e-9) -> Tensor:
        """``bool[N]``: which points are cloud points (interior or boundary) within ``tol``."""
        every = self.points if self.boundary_points is None else torch.cat([self.points, self.boundary_points])
        return self._nearest(every, x)[0] <= tol

    def on_boundary(self, x: Tensor, tol: float = 1e-9) -> Tensor:
        if self.boundary_points is None:
            return torch.zeros(as_points(x, self.dim).shape[0], dtype=torch.bool)
        return self._nearest(self.boundary_points, x)[0] <= tol

    def boundary_normal(self, x: Tensor) -> Tensor:
        """The given normal of the nearest boundary point, ``[N, d]``."""
        if self.boundary_points is None:
            raise ValueError("this point cloud has no boundary normals")
        return self.boundary_normals[self._nearest(self.boundary_points, x)[1]]
