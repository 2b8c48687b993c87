"""User trial 3: identify a diffusion coefficient field (after PINNacle's "PInv", Poisson inverse problem, Hao
et al. 2023):

    -div(a(x, y) grad u) = f(x, y),   (x, y) in [0, 1]^2,
    true u = sin(pi x) sin(pi y),  true a = 1 / (1 + x^2 + y^2 + (x - 1)^2 + (y - 1)^2)  (from 1/3 to 1/2),
    f = -(a lap(u) + a_x u_x + a_y u_y) of the true pair, written out by hand.

The network has two outputs (u, a). u is observed at n_obs Latin-hypercube points with 1 % Gaussian noise
(relative to max |u| = 1, drawn from the seed's generator), a is known on the boundary only (without it a is not
determined: a u_x-weighted transport equation for a needs inflow values), u = 0 on the boundary. Four
terms: the PDE, the observations of u (``output=0``), u's boundary values (``output=0``) and a's (``output=1``).
1,000 collocation points (LHS), 100 observations, 200 boundary points, a 3 x 30 tanh MLP. The reference is the
closed form (u and a on a 41 x 41 grid).

    fastpinn train bench/trials/poisson_inverse_field.py:make_problem --epochs 2000
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fastpinn import Problem, data, dirichlet, pde
from fastpinn.geometry import Rectangle

PI = math.pi
DOMAIN = Rectangle((0.0, 0.0), (1.0, 1.0))


def u_true(x, y, lib):
    return lib.sin(PI * x) * lib.sin(PI * y)


def a_true(x, y, lib):
    return 1 / (1 + x ** 2 + y ** 2 + (x - 1) ** 2 + (y - 1) ** 2)


def source(x, y, lib):
    r = 1 + x ** 2 + y ** 2 + (x - 1) ** 2 + (y - 1) ** 2
    a, a_x, a_y = 1 / r, -(4 * x - 2) / r ** 2, -(4 * y - 2) / r ** 2
    u_x = PI * lib.cos(PI * x) * lib.sin(PI * y)
    u_y = PI * lib.sin(PI * x) * lib.cos(PI * y)
    return -(a * (-2 * PI ** 2 * u_true(x, y, lib)) + a_x * u_x + a_y * u_y)


def solution():
    g = np.linspace(0.0, 1.0, 41)
    x, y = np.meshgrid(g, g, indexing="ij")
    X = np.stack([x.ravel(), y.ravel()], axis=1)
    return X, np.stack([u_true(X[:, 0], X[:, 1], np), a_true(X[:, 0], X[:, 1], np)], axis=1)


def make_problem(seed: int = 0, n_pde: int = 1000, n_bc: int = 200, n_obs: int = 100, noise: float = 0.01) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x_pde = DOMAIN.sample_interior(n_pde, "lhs", gen)
    x_bc = DOMAIN.sample_boundary(n_bc, "uniform", gen)
    x_obs = DOMAIN.sample_interior(n_obs, "lhs", gen)
    u_obs = u_true(x_obs[:, 0], x_obs[:, 1], torch)
    u_obs = u_obs + noise * torch.randn(n_obs, generator=gen, dtype=u_obs.dtype)

    def residual(f):  # [N]
        x, y = f.x[..., 0], f.x[..., 1]
        a = f["u"][..., 1]
        flux_div = a * (f["u_xx"][..., 0] + f["u_yy"][..., 0]) + f["u_x"][..., 1] * f["u_x"][..., 0] \
            + f["u_y"][..., 1] * f["u_y"][..., 0]
        return -flux_div - source(x, y, torch)

    return Problem(name="poisson_inverse_field", coords=("x", "y"), lower=(0.0, 0.0), upper=(1.0, 1.0),
                   terms=[pde("pde", x_pde, residual, requests=("u", "u_x", "u_y", "u_xx", "u_yy")),
                          data("obs", x_obs, u_obs, output=0),
                          dirichlet("u_bc", x_bc, 0.0, output=0),
                          dirichlet("a_bc", x_bc, a_true(x_bc[:, 0], x_bc[:, 1], torch), output=1)],
                   depth=3, width=30, out_dim=2, epochs=20000, solution=solution, seeds=(seed,))
