"""fastpinn.geometry (issue 17): measures by Monte Carlo against closed forms, boundary points and their outward
normals against analytic ones, every sampling method, predicate subsets, space-time domains, point clouds.

Monte Carlo tolerances: ``estimate_measure`` is the bbox volume times a binomial fraction, so its standard error
is ``V sqrt(p (1 - p) / n)``; a check at 5 standard errors fails a correct implementation with probability
~6e-7 (and the seeds are fixed), while a wrong shape (a missing hole, a wrong radius) is off by many more.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch
from scipy import integrate

from fastpinn import sampling
from fastpinn.geometry import (Ball, Box, Disk, Ellipse, Interval, NBall, PointCloud, Polygon, Rectangle,
                               TimeDomain, Triangle)

L_SHAPE = [(-1, -1), (1, -1), (1, 0), (0, 0), (0, 1), (-1, 1)]
METHODS = ["uniform", "lhs", "sobol", "halton"]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _lens(r, d):
    """Area of the intersection of two disks of radius r whose centres are d apart."""
    return 2 * r * r * math.acos(d / (2 * r)) - d / 2 * math.sqrt(4 * r * r - d * d)


BALLS_IN_CUBE = [((0.25, 0.25, 0.25), 0.2), ((0.7, 0.7, 0.7), 0.25)]
CUBE_MINUS_BALLS = Box([0, 0, 0], [1, 1, 1]) - Ball(*BALLS_IN_CUBE[0]) - Ball(*BALLS_IN_CUBE[1])

CASES = {
    "disk": (Disk((0.3, -0.2), 1.0), math.pi),
    "ellipse": (Ellipse((0, 0), 2.0, 0.5), math.pi),
    "L-shape": (Polygon(L_SHAPE), 3.0),
    "triangle": (Triangle((0, 0), (2, 0), (0.5, 1.5)), 1.5),
    "square minus disk": (Rectangle((-1, -1), (1, 1)) - Disk((0, 0), 0.5), 4 - math.pi / 4),
    "cube minus spheres": (CUBE_MINUS_BALLS, 1 - sum(4 / 3 * math.pi * r ** 3 for _, r in BALLS_IN_CUBE)),
    "5-D ball": (NBall([0.0] * 5, 1.0), math.pi ** 2.5 / math.gamma(3.5)),
    "disk union disk": (Disk((0, 0), 1) | Disk((1, 0), 1), 2 * math.pi - _lens(1, 1)),
    "disk and disk": (Disk((0, 0), 1) & Disk((1, 0), 1), _lens(1, 1)),
    # nested difference: an island r <= 0.3 inside a ring 0.6 <= r <= 1
    "disk minus annulus": (Disk((0, 0), 1) - (Disk((0, 0), 0.6) - Disk((0, 0), 0.3)), math.pi * (1 - 0.36 + 0.09)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_monte_carlo_measure_matches_the_closed_form(name):
    domain, exact = CASES[name]
    estimate, se = domain.estimate_measure(200_000, _gen(1))
    assert abs(estimate - exact) < 5 * se, (estimate, exact, se)


def test_closed_form_measures():
    assert Box([0, 0, 0], [1, 2, 3]).measure == 6 and Box([0, 0, 0], [1, 2, 3]).boundary_measure == 22
    assert Interval(-1, 2).measure == 3 and Interval(-1, 2).boundary_measure == 2
    assert Ball((0, 0, 0), 2).measure == pytest.approx(32 / 3 * math.pi)
    assert Ball((0, 0, 0), 2).boundary_measure == pytest.approx(16 * math.pi)
    assert Polygon(L_SHAPE).boundary_measure == 8 and Polygon(L_SHAPE[::-1]).measure == 3
    a, b = 2.0, 1.0  # Ramanujan's second approximation is exact to ~1e-9 at this eccentricity
    h = ((a - b) / (a + b)) ** 2
    ramanujan = math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))
    assert Ellipse((0, 0), a, b).boundary_measure == pytest.approx(ramanujan, rel=1e-7)


def _l_shape_normals(x):
    """The outward normal of the L-shape's edge each point (off the corners) lies on."""
    n = torch.zeros_like(x)
    eps = 1e-9
    on = {(0, -1): x[:, 1] < -1 + eps, (1, 0): (x[:, 0] > 1 - eps) | ((x[:, 0].abs() < eps) & (x[:, 1] > 0)),
          (0, 1): (x[:, 1] > 1 - eps) | ((x[:, 1].abs() < eps) & (x[:, 0] > 0)), (-1, 0): x[:, 0] < -1 + eps}
    for normal, rows in on.items():
        n[rows] = torch.tensor(normal, dtype=x.dtype)
    return n


def _cube_minus_balls_normals(x):
    n = torch.zeros_like(x)
    q = x - 0.5
    k = q.abs().argmax(1)
    n[torch.arange(len(x)), k] = torch.sign(q[torch.arange(len(x)), k])
    for c, r in BALLS_IN_CUBE:
        v = x - torch.tensor(c, dtype=x.dtype)
        rows = (v.norm(dim=1) - r).abs() < 1e-9
        n[rows] = -v[rows] / r  # into the hole
    return n


ANALYTIC_NORMALS = {
    "disk": lambda x: (x - torch.tensor([0.3, -0.2], dtype=x.dtype)) / 1.0,
    "ellipse": lambda x: torch.nn.functional.normalize(x / torch.tensor([4.0, 0.25], dtype=x.dtype), dim=1),
    "L-shape": _l_shape_normals,
    "square minus disk": lambda x: torch.where((x.norm(dim=1, keepdim=True) - 0.5).abs() < 1e-9, -x / 0.5,
                                               _l_shape_normals(x)),  # the square's faces are L-shape faces too
    "cube minus spheres": _cube_minus_balls_normals,
    "5-D ball": lambda x: x,
    "disk union disk": lambda x: torch.where(x[:, :1] < 0.5, x, x - torch.tensor([1.0, 0.0], dtype=x.dtype)),
    "disk and disk": lambda x: torch.where(x[:, :1] > 0.5, x, x - torch.tensor([1.0, 0.0], dtype=x.dtype)),
    # subtracted twice, the island's circle points outward again; the ring's inner circle points into the gap
    "disk minus annulus": lambda x: torch.where((x.norm(dim=1, keepdim=True) - 0.6).abs() < 1e-9, -x, x)
    / x.norm(dim=1, keepdim=True),
}


@pytest.mark.parametrize("name", list(ANALYTIC_NORMALS))
def test_boundary_points_lie_on_the_boundary_with_analytic_outward_normals(name):
    domain, _ = CASES[name]
    x = domain.sample_boundary(500, generator=_gen(2))
    assert x.shape == (500, domain.dim) and x.dtype == torch.float64
    assert bool(domain.on_boundary(x, 1e-9).all())
    n = domain.boundary_normal(x)
    torch.testing.assert_close(n.norm(dim=1), torch.ones(500, dtype=torch.float64))
    torch.testing.assert_close(n, ANALYTIC_NORMALS[name](x), atol=1e-9, rtol=0)


def test_csg_boundary_points_are_uniform_in_length():
    # the hole's circle (length pi) against the square's faces (8): a share of pi / (8 + pi)
    domain, n = CASES["square minus disk"][0], 4000
    x = domain.sample_boundary(n, generator=_gen(3))
    p = math.pi / (8 + math.pi)
    share = float(((x.norm(dim=1) - 0.5).abs() < 1e-9).double().mean())
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_ellipse_boundary_points_are_uniform_in_arc_length():
    a, b, n = 2.0, 0.5, 4000
    x = Ellipse((0, 0), a, b).sample_boundary(n, "sobol", _gen(4))
    # the arcs with |sin t| < 1/2 (|y| < b/2) against the whole perimeter, by quadrature
    speed = lambda t: math.hypot(a * math.sin(t), b * math.cos(t))  # noqa: E731
    p = 2 * integrate.quad(speed, -math.pi / 6, math.pi / 6)[0] / integrate.quad(speed, 0, 2 * math.pi)[0]
    share = float((x[:, 1].abs() < b / 2).double().mean())
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["L-shape", "5-D ball", "cube minus spheres", "ellipse"])
def test_every_method_samples_inside_with_the_right_count(method, name):
    domain, _ = CASES[name]
    x = domain.sample_interior(777, method, _gen(5))
    assert x.shape == (777, domain.dim) and bool(domain.contains(x).all())
    assert torch.equal(x, domain.sample_interior(777, method, _gen(5)))  # reproducible from the seed
    assert not torch.equal(x, domain.sample_interior(777, method, _gen(6)))
    b = domain.sample_boundary(100, method, _gen(5), dtype=torch.float32)
    assert b.shape == (100, domain.dim) and b.dtype == torch.float32 and bool(domain.on_boundary(b, 1e-5).all())


def test_sobol_points_cover_the_l_shape_more_evenly_than_uniform():
    # quasi-random: the share of points in the unit square [-1, 0]^2 (area 1 of 3) is close to 1/3
    domain = Polygon(L_SHAPE)
    share = lambda x: float(((x[:, 0] < 0) & (x[:, 1] < 0)).double().mean())  # noqa: E731
    assert abs(share(domain.sample_interior(4096, "sobol", _gen(7))) - 1 / 3) < 0.005
    assert abs(share(domain.sample_interior(4096, "lhs", _gen(7))) - 1 / 3) < 0.03


def test_a_predicate_picks_a_boundary_subset():
    domain = Polygon(L_SHAPE)
    on_x0 = lambda x: x[:, 0].abs() < 1e-12  # noqa: E731  the edge x = 0, 0 <= y <= 1
    x = domain.sample_boundary(50, generator=_gen(8), where=on_x0)
    assert x.shape == (50, 2) and bool((x[:, 0] == 0).all() & (x[:, 1] >= 0).all() & (x[:, 1] <= 1).all())
    subset = domain.boundary_subset(on_x0)
    y = subset.sample_boundary(20, "halton", _gen(8))
    assert bool(subset.on_boundary(y).all()) and not bool(subset.on_boundary(torch.tensor([[1.0, -0.5]])).any())
    torch.testing.assert_close(subset.boundary_normal(y), torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand(20, 2))
    hole = CASES["square minus disk"][0].boundary_subset(lambda p: p.norm(dim=1) < 0.75)
    assert bool(((hole.sample_boundary(30, generator=_gen(9)).norm(dim=1) - 0.5).abs() < 1e-12).all())
    inner = domain.sample_interior(40, generator=_gen(9), where=lambda p: p[:, 0] > 0)
    assert bool((inner[:, 0] > 0).all() & (inner[:, 1] <= 0).all())


def test_hopeless_rejection_and_bad_input_are_named():
    with pytest.raises(ValueError, match="empty or too thin"):
        Polygon(L_SHAPE).sample_boundary(10, generator=_gen(), where=lambda x: x[:, 0] > 5)
    sliver = Rectangle((0, 0), (1, 1)) - Disk((0.5, 0.5), 0.7071)  # four corners of area ~1e-10
    with pytest.raises(ValueError, match="empty or too thin"):
        sliver.sample_interior(10, generator=_gen())
    with pytest.raises(ValueError, match="method must be one of uniform, lhs, sobol, halton"):
        Disk((0, 0), 1).sample_interior(10, "grid")
    with pytest.raises(ValueError, match="where must map"):
        Disk((0, 0), 1).sample_interior(10, where=lambda x: x[:, 0])
    with pytest.raises(ValueError, match="vertices"):
        Polygon([(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="simple polygon"):
        Polygon([(0, 0), (2, 2), (2, 0), (0, 1)])  # a lopsided bow tie
    with pytest.raises(ValueError, match="lower < upper"):
        Box([0, 1], [1, 0])
    with pytest.raises(ValueError, match="same dimension"):
        Disk((0, 0), 1) | Ball((0, 0, 0), 1)
    with pytest.raises(ValueError, match="radius"):
        Disk((0, 0), -1)
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        Disk((0, 0), 1).contains(torch.zeros(3, 3))


def test_sobol_without_scipy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(ImportError, match=r"fastpinn\[geometry\]"):
        Disk((0, 0), 1).sample_interior(8, "sobol", _gen())
    assert Disk((0, 0), 1).sample_interior(8, "lhs", _gen()).shape == (8, 2)  # the others need no scipy


def test_space_time_domain():
    space = Polygon(L_SHAPE)
    st = space * Interval(0.0, 2.0)
    assert isinstance(st, TimeDomain) and st.dim == 3 and st.bbox == ((-1.0, -1.0, 0.0), (1.0, 1.0, 2.0))
    assert st.measure == 6.0
    x = st.sample_interior(300, "sobol", _gen(10))
    assert bool(st.contains(x).all()) and bool(((x[:, 2] >= 0) & (x[:, 2] <= 2)).all())
    b = st.sample_boundary(300, generator=_gen(10))
    assert bool(space.on_boundary(b[:, :2], 1e-9).all()) and bool(st.on_boundary(b).all())
    n = st.boundary_normal(b)
    assert bool((n[:, 2] == 0).all())
    torch.testing.assert_close(n[:, :2], _l_shape_normals(b[:, :2]), atol=1e-9, rtol=0)
    ic = st.sample_initial(100, "lhs", _gen(10))
    assert bool((ic[:, 2] == 0).all()) and bool(space.contains(ic[:, :2]).all())
    first = TimeDomain(Interval(-1, 1), 0.0, 1.0, time_first=True)  # the built-in problems' ("t", "x")
    ic = first.sample_initial(10, generator=_gen())
    assert bool((ic[:, 0] == 0).all()) and bool((ic[:, 1].abs() <= 1).all())
    assert bool((first.sample_boundary(20, generator=_gen())[:, 1].abs() == 1).all())
    with pytest.raises(ValueError, match="t1"):
        TimeDomain(space, 1.0, 0.0)


def test_interval_and_box_boundaries():
    x = Interval(-1, 3).sample_boundary(100, generator=_gen(11))
    assert set(x[:, 0].tolist()) == {-1.0, 3.0}
    torch.testing.assert_close(Interval(-1, 3).boundary_normal(x)[:, 0], torch.sign(x[:, 0]))
    box = Box([0, 0, 0, 0], [1, 2, 1, 1])
    x = box.sample_boundary(2000, generator=_gen(11))
    assert bool(box.on_boundary(x, 0).all())
    # faces with x1 fixed have area 1, the other six have area 2: share 2 / 14
    share = float(((x[:, 1] == 0) | (x[:, 1] == 2)).double().mean())
    assert abs(share - 1 / 7) < 4 * math.sqrt(1 / 7 * 6 / 7 / 2000)


def test_point_cloud_with_user_normals():
    gen = _gen(12)
    interior = Disk((0, 0), 1).sample_interior(50, generator=gen)
    rim = Disk((0, 0), 1).sample_boundary(30, generator=gen)
    cloud = PointCloud(interior, boundary_points=rim, boundary_normals=2 * rim)
    assert cloud.sample_interior().shape == (50, 2) and cloud.sample_boundary(10, generator=gen).shape == (10, 2)
    picked = cloud.sample_boundary(10, generator=gen)
    torch.testing.assert_close(cloud.boundary_normal(picked), picked)  # normalised, matched to the nearest point
    assert bool(cloud.on_boundary(picked).all()) and not bool(cloud.on_boundary(interior).any())
    surface = PointCloud(rim, normals=rim)
    assert surface.sample_boundary().shape == (30, 2)
    with pytest.raises(ValueError, match="n must be None or an integer in"):
        cloud.sample_interior(51)
    with pytest.raises(ValueError, match="boundary_normals"):
        PointCloud(interior, boundary_points=rim)


def test_the_box_sampler_still_refuses_quasi_random_names():
    # fastpinn.sampling keeps its two box methods; quasi-random sampling lives in fastpinn.geometry
    with pytest.raises(ValueError, match="sampler"):
        sampling.sample("sobol", 3, [0.0], [1.0], torch.Generator())
    x = Box([0.0], [1.0]).sample_interior(5, "sobol", _gen())
    assert x.shape == (5, 1)
