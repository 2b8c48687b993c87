"""Geometry: domains as objects, their interior and boundary samplers, outward normals and CSG.

    from fastpinn.geometry import Rectangle, Disk, Polygon
    domain = Rectangle((-1, -1), (1, 1)) - Disk((0, 0), 0.5)
    x_pde = domain.sample_interior(2000, "sobol", gen)           # [2000, 2], float64
    x_hole = domain.sample_boundary(200, where=lambda x: x.norm(dim=1) < 0.75)
    n_hole = domain.boundary_normal(x_hole)                       # outward: into the hole

Sampling methods: "uniform", "lhs", "sobol", "halton" (the last two need scipy: ``fastpinn[geometry]``).
Use with :func:`fastpinn.neumann` / :func:`fastpinn.robin` (``normals=`` or ``domain=``) for conditions on the
outward normal derivative.

Why no geometry library: a PINN needs containment, distance-to-boundary and normals of a few primitives and
their combinations, not meshes or exact polygon booleans. Signed distances combine under union/intersection/
difference by min/max, which covers the gallery (L-shape, square minus disks, cube minus spheres, N-balls)
in ~600 lines of torch with no new dependency; only the quasi-random sequences come from a library
(``scipy.stats.qmc``). Triangle meshes / STL (trimesh) or exact polygon booleans (shapely) would enter as
optional extras behind this same ``Domain`` interface if a problem needs them.
"""

from .base import BoundarySubset, Difference, Domain, Intersection, Union
from .cloud import PointCloud
from .cube import METHODS, CubeStream
from .shapes import Ball, Box, Disk, Ellipse, Interval, NBall, Polygon, Rectangle, Triangle
from .time import TimeDomain

__all__ = ["Domain", "BoundarySubset", "Union", "Intersection", "Difference", "PointCloud", "METHODS", "CubeStream",
           "Box", "Rectangle", "Interval", "NBall", "Disk", "Ball", "Ellipse", "Polygon", "Triangle", "TimeDomain"]
