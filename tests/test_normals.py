"""Neumann and Robin conditions on the outward normal (issue 17): du/dn = sum_i n_i du/dx_i on any boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import fastpinn
from fastpinn import MLP, Problem, dirichlet, neumann, pde, robin
from fastpinn.geometry import Disk, Rectangle

XY = ("x", "y")


class SquaredRadius(nn.Module):
    """u = x^2 + y^2: du/dn = 2 r on a circle of radius r centred at 0 (outward), -2 r seen from outside."""

    def forward(self, x):
        return x.pow(2).sum(-1, keepdim=True)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_neumann_on_the_unit_circle_is_exact_for_x2_plus_y2():
    disk = Disk((0, 0), 1.0)
    x = disk.sample_boundary(64, generator=_gen())
    term = neumann("bc", x, value=2.0, domain=disk, coords=XY)
    r = term.residual_values(SquaredRadius(), XY, method="autograd")
    assert r.shape == (64, 1) and float(r.detach().abs().max()) < 1e-12
    # the same with the normals given
    r2 = neumann("bc", x, value=2.0, normals=x / x.norm(dim=1, keepdim=True), coords=XY).residual_values(
        SquaredRadius(), XY, method="autograd")
    assert float(r2.detach().abs().max()) < 1e-12


def test_robin_on_the_unit_circle_is_exact():
    disk = Disk((0, 0), 1.0)
    x = disk.sample_boundary(50, "sobol", _gen(1))
    # 3 u + 0.5 du/dn = 3 * 1 + 0.5 * 2 = 4 on the unit circle
    r = robin("robin", x, 3.0, 0.5, 4.0, domain=disk, coords=XY).residual_values(SquaredRadius(), XY,
                                                                                     method="autograd")
    assert float(r.detach().abs().max()) < 1e-12


def test_the_normal_on_a_subtracted_disk_points_into_the_hole():
    domain = Rectangle((-1, -1), (1, 1)) - Disk((0, 0), 0.5)
    hole = domain.sample_boundary(40, generator=_gen(2), where=lambda p: p.norm(dim=1) < 0.75)
    r = neumann("hole", hole, value=-1.0, domain=domain, coords=XY).residual_values(SquaredRadius(), XY,
                                                                                     method="autograd")
    assert float(r.detach().abs().max()) < 1e-12  # du/dn = -2 * 0.5 with n = -x / r
    # on the square's faces, du/dn = 2 |x_k| = 2
    outer = domain.sample_boundary(40, generator=_gen(3), where=lambda p: p.norm(dim=1) > 0.75)
    r = neumann("box", outer, value=2.0, domain=domain, coords=XY).residual_values(SquaredRadius(), XY,
                                                                                   method="autograd")
    assert float(r.detach().abs().max()) < 1e-12


@pytest.mark.parametrize("method", ["autograd", "jet"])
def test_robin_residual_of_an_mlp_equals_autograd_of_the_network(method):
    net = MLP(2, 1, 3, 8, [-1.0, -1.0], [1.0, 1.0], seed=0, dtype=torch.float64)
    disk = Disk((0.2, 0.0), 0.7)
    x = disk.sample_boundary(30, generator=_gen(4))
    n = disk.boundary_normal(x)
    term = robin("robin", x, 2.0, -1.5, lambda p: p[:, 0], domain=disk, coords=XY)
    xr = x.clone().requires_grad_(True)
    u = net(xr)
    grad = torch.autograd.grad(u.sum(), xr)[0]
    expected = 2.0 * u[:, 0] - 1.5 * (grad * n).sum(1) - x[:, 0]
    got = term.residual_values(net, XY, method=method)[:, 0]
    torch.testing.assert_close(got, expected.detach(), rtol=1e-9, atol=1e-10)
    # a mini-batch reads the normals and targets of its own points
    index = torch.tensor([3, 17, 5])
    torch.testing.assert_close(term.residual_values(net, XY, index, method=method)[:, 0], expected.detach()[index],
                               rtol=1e-9, atol=1e-10)


def test_the_axis_form_still_works_and_the_forms_do_not_mix():
    x = torch.tensor([[1.0, 0.3], [1.0, -0.2]], dtype=torch.float64)
    r = neumann("bc", x, "x", 2.0).residual_values(SquaredRadius(), XY, method="autograd")
    assert float(r.detach().abs().max()) < 1e-12  # du/dx = 2x = 2 at x = 1
    with pytest.raises(ValueError, match="coord must be a coordinate name"):
        neumann("bc", x, 2.0, domain=Disk((0, 0), 1.0), coords=XY)  # the value given where the axis form's coord goes
    with pytest.raises(ValueError, match="not both"):
        neumann("bc", x, "x", normals=x, coords=XY)
    with pytest.raises(ValueError, match="exactly one of normals"):
        neumann("bc", x, value=1.0, coords=XY)
    with pytest.raises(ValueError, match="coords"):
        neumann("bc", x, value=1.0, normals=x)
    with pytest.raises(ValueError, match="shape"):
        robin("r", x, 1.0, 1.0, normals=x[:1], coords=XY)
    with pytest.raises(ValueError, match="robin a"):
        robin("r", x, "1", 1.0, normals=x, coords=XY)
    with pytest.raises(ValueError, match="both be 0"):
        robin("r", x, 0.0, 0.0, normals=x, coords=XY)


def test_a_problem_with_a_robin_term_builds_and_trains_a_step():
    disk = Disk((0, 0), 1.0)
    gen = _gen(5)
    x_in, x_bd = disk.sample_interior(64, generator=gen), disk.sample_boundary(32, generator=gen)
    problem = Problem(name="disk", coords=XY, lower=(-1, -1), upper=(1, 1),
                      terms=[pde("pde", x_in, lambda f: f["u_xx"][..., 0] + f["u_yy"][..., 0] - 4.0,
                                 requests=("u_xx", "u_yy")),
                             robin("robin", x_bd, 1.0, 1.0, 3.0, domain=disk, coords=XY)],
                      depth=2, width=8)
    history = fastpinn.Trainer(problem, fastpinn.PINN()).train(3)
    assert history.epochs == 3 and bool(np.isfinite(np.asarray(history.losses)).all())


def test_normals_of_ensemble_points_follow_each_member():
    # points [S, N, d] (a stacked problem): each member's normals are its own points' normals
    disk = Disk((0, 0), 1.0)
    x = torch.stack([disk.sample_boundary(16, generator=_gen(s)) for s in range(3)])
    term = neumann("bc", x, value=2.0, domain=disk, coords=XY)
    torch.testing.assert_close(term.targets[..., :2], x)
    r = term.residual_values(SquaredRadius(), XY, method="autograd")
    assert r.shape == (3, 16, 1) and float(r.detach().abs().max()) < 1e-12
