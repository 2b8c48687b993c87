"""User trial 3: linear elastostatics on the unit square (Haghighat et al. 2021, the problem of DeepXDE's
"linear elastostatic equation over a 2D square domain" example), in displacement form, two outputs (u_x, u_y):

    (lam + 2 mu) u_x,xx + mu u_x,yy + (lam + mu) u_y,xy + f_x = 0,
    mu u_y,xx + (lam + 2 mu) u_y,yy + (lam + mu) u_x,xy + f_y = 0,      (x, y) in [0, 1]^2,
    lam = 1, mu = 0.5, Q = 4,
    exact u_x = cos(2 pi x) sin(pi y),  u_y = sin(pi x) Q y^4 / 4,

with the body force f of that solution (Haghighat et al.'s eq. 27, derived again here and checked by
autograd). Boundary conditions, a mix of displacements and tractions:
    x = 0 and x = 1:  u_y = 0,  sigma_xx = (lam + 2 mu) u_x,x + lam u_y,y = 0,
    y = 0:            u_x = u_y = 0,
    y = 1:            u_x = 0,  sigma_yy = lam u_x,x + (lam + 2 mu) u_y,y = (lam + 2 mu) Q sin(pi x).
The traction conditions are residual terms (``pde``) on boundary points: six terms in all (the PDE with an
``[N, 2]`` residual, three displacement terms with ``output=``, two traction terms). 1,000 collocation points (LHS),
50 points on each side, a 3 x 40 tanh MLP; the reference is the closed form on a 41 x 41 grid. (DeepXDE's
example also trains the stresses as three more outputs; this one keeps the displacement form.)

    fastpinn train bench/trials/elasticity_plate.py:make_problem --epochs 2000
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fastpinn import Problem, dirichlet, pde
from fastpinn.geometry import Rectangle

PI = math.pi
LAM, MU, Q = 1.0, 0.5, 4.0
DOMAIN = Rectangle((0.0, 0.0), (1.0, 1.0))


def exact(x, y, lib):
    return lib.cos(2 * PI * x) * lib.sin(PI * y), lib.sin(PI * x) * Q * y ** 4 / 4


def body_force(x, y):
    f_x = LAM * (4 * PI ** 2 * torch.cos(2 * PI * x) * torch.sin(PI * y) - PI * torch.cos(PI * x) * Q * y ** 3) \
        + MU * (9 * PI ** 2 * torch.cos(2 * PI * x) * torch.sin(PI * y) - PI * torch.cos(PI * x) * Q * y ** 3)
    f_y = LAM * (-3 * torch.sin(PI * x) * Q * y ** 2 + 2 * PI ** 2 * torch.sin(2 * PI * x) * torch.cos(PI * y)) \
        + MU * (-6 * torch.sin(PI * x) * Q * y ** 2 + 2 * PI ** 2 * torch.sin(2 * PI * x) * torch.cos(PI * y)
                + PI ** 2 * torch.sin(PI * x) * Q * y ** 4 / 4)
    return f_x, f_y


def solution():
    g = np.linspace(0.0, 1.0, 41)
    x, y = np.meshgrid(g, g, indexing="ij")
    X = np.stack([x.ravel(), y.ravel()], axis=1)
    return X, np.stack(exact(X[:, 0], X[:, 1], np), axis=1)


def make_problem(seed: int = 0, n_pde: int = 1000, n_side: int = 50) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x_pde = DOMAIN.sample_interior(n_pde, "lhs", gen)

    def side(where):
        return DOMAIN.sample_boundary(n_side, "uniform", gen, where=where)

    eps = 1e-9
    x_lr = torch.cat([side(lambda X: X[..., 0] < eps), side(lambda X: X[..., 0] > 1 - eps)])
    x_bottom = side(lambda X: X[..., 1] < eps)
    x_top = side(lambda X: X[..., 1] > 1 - eps)

    def equilibrium(f):  # [N, 2]
        ux_xx, uy_xx = f["u_xx"][..., 0], f["u_xx"][..., 1]
        ux_yy, uy_yy = f["u_yy"][..., 0], f["u_yy"][..., 1]
        ux_xy, uy_xy = f["u_xy"][..., 0], f["u_xy"][..., 1]
        f_x, f_y = body_force(f.x[..., 0], f.x[..., 1])
        return torch.stack([(LAM + 2 * MU) * ux_xx + MU * ux_yy + (LAM + MU) * uy_xy + f_x,
                            MU * uy_xx + (LAM + 2 * MU) * uy_yy + (LAM + MU) * ux_xy + f_y], -1)

    def sigma_xx(f):  # [N]
        return (LAM + 2 * MU) * f["u_x"][..., 0] + LAM * f["u_y"][..., 1]

    def sigma_yy_minus_load(f):  # [N]
        load = (LAM + 2 * MU) * Q * torch.sin(PI * f.x[..., 0])
        return LAM * f["u_x"][..., 0] + (LAM + 2 * MU) * f["u_y"][..., 1] - load

    return Problem(name="elasticity_plate", coords=("x", "y"), lower=(0.0, 0.0), upper=(1.0, 1.0),
                   terms=[pde("pde", x_pde, equilibrium, requests=("u_xx", "u_yy", "u_xy")),
                          dirichlet("sides_uy", x_lr, 0.0, output=1),
                          pde("sides_traction", x_lr, sigma_xx, requests=("u_x", "u_y")),
                          dirichlet("bottom", x_bottom, 0.0),
                          dirichlet("top_ux", x_top, 0.0, output=0),
                          pde("top_traction", x_top, sigma_yy_minus_load, requests=("u_x", "u_y"))],
                   depth=3, width=40, out_dim=2, epochs=20000, solution=solution, seeds=(seed,))
