"""User trial 2: Poisson on a square with four circular holes (the geometry of PINNacle's "Poisson 2d-C",
Hao et al. 2023), with a manufactured solution so that the reference is closed form:

    -(u_xx + u_yy) = f   on  D = [-0.5, 0.5]^2 minus four disks of radius 0.1 centred at (+-0.3, +-0.3),
    u = u_exact on the square's edges,   du/dn = grad(u_exact) . n on the four circles (n: D's outward normal),
    u_exact = sin(2 pi x) cos(2 pi y) + x y,   f = 8 pi^2 sin(2 pi x) cos(2 pi y).

PINNacle solves -Δu = 0 with u = 0 on the circles and u = 1 on the square (8,192 + 2,048 points, reference by
FEM); here 1,000 interior points (Sobol'), 200 on the square, 200 on the circles, a 4 x 40 tanh MLP.

    fastpinn train bench/trials/poisson_holes.py:make_problem --epochs 2000
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fastpinn import Problem, dirichlet, neumann, pde
from fastpinn.geometry import Disk, Rectangle

SQUARE = Rectangle((-0.5, -0.5), (0.5, 0.5))
CENTRES = [(0.3, 0.3), (-0.3, 0.3), (0.3, -0.3), (-0.3, -0.3)]
DOMAIN = SQUARE
for c in CENTRES:
    DOMAIN = DOMAIN - Disk(c, 0.1)
K = 2 * math.pi


def exact(x):
    return torch.sin(K * x[..., 0]) * torch.cos(K * x[..., 1]) + x[..., 0] * x[..., 1]


def grad_exact(x):
    ux = K * torch.cos(K * x[..., 0]) * torch.cos(K * x[..., 1]) + x[..., 1]
    uy = -K * torch.sin(K * x[..., 0]) * torch.sin(K * x[..., 1]) + x[..., 0]
    return torch.stack([ux, uy], -1)


def on_square(x):
    return (x.abs() >= 0.5 - 1e-6).any(-1)


def make_problem(seed: int = 0, n_pde: int = 1000, n_bc: int = 200) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x_pde = DOMAIN.sample_interior(n_pde, "sobol", gen)
    x_sq = DOMAIN.boundary_subset(on_square).sample_boundary(n_bc, "uniform", gen)
    x_holes = DOMAIN.boundary_subset(lambda x: ~on_square(x)).sample_boundary(n_bc, "uniform", gen)
    flux = (grad_exact(x_holes) * DOMAIN.boundary_normal(x_holes)).sum(-1)

    def residual(f):
        src = 2 * K ** 2 * torch.sin(K * f.x[..., 0]) * torch.cos(K * f.x[..., 1])
        return -(f["u_xx"][..., 0] + f["u_yy"][..., 0]) - src

    def solution():
        X = DOMAIN.sample_interior(4000, "halton", torch.Generator().manual_seed(123))
        return X.numpy(), exact(X).numpy()

    return Problem(name="poisson_holes", coords=("x", "y"), lower=(-0.5, -0.5), upper=(0.5, 0.5),
                   terms=[pde("pde", x_pde, residual, requests=("u_xx", "u_yy"), sampler=DOMAIN),
                          dirichlet("square", x_sq, exact),
                          neumann("holes", x_holes, value=flux, domain=DOMAIN, coords=("x", "y"))],
                   depth=4, width=40, epochs=20000, solution=solution, seeds=(seed,))
