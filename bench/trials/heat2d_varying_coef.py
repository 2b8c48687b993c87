"""User trial 3: heat conduction with a space-varying conductivity (after PINNacle's "Heat 2d-VC", Hao et
al. 2023), with a manufactured solution so that the reference is closed-form:

    u_t = div(a(x, y) grad u) + f(x, y, t),   (x, y) in [0, 1]^2,  t in [0, 1],
    a(x, y) = 2 + sin(pi x) sin(pi y),
    u = 0 on the square's boundary,  u(x, y, 0) = s(x, y),
    exact u* = exp(-t) s(x, y),  s = sin(pi x) sin(pi y) + 0.2 sin(3 pi x) sin(2 pi y),

f = u*_t - div(a grad u*) written out by hand (div(a grad u) = a (u_xx + u_yy) + a_x u_x + a_y u_y). PINNacle's
own case has a multi-scale source and a finite-element reference; this one keeps the operator (variable
coefficient, 2-D + time, three terms) and replaces the data by a closed form. 2,000 collocation points (LHS),
400 initial and 400 lateral boundary points, a 3 x 32 tanh MLP.

    fastpinn train bench/trials/heat2d_varying_coef.py:make_problem --epochs 2000
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fastpinn import Problem, dirichlet, initial, pde
from fastpinn.geometry import Interval, Rectangle

PI = math.pi
DOMAIN = Rectangle((0.0, 0.0), (1.0, 1.0)) * Interval(0.0, 1.0)  # (x, y, t), time last


def s_parts(x, y, lib):
    """s, s_x, s_y and the Laplacian of s; works on numpy arrays and torch tensors (lib = np or torch)."""
    s1, s2 = lib.sin(PI * x) * lib.sin(PI * y), lib.sin(3 * PI * x) * lib.sin(2 * PI * y)
    s = s1 + 0.2 * s2
    s_x = PI * lib.cos(PI * x) * lib.sin(PI * y) + 0.2 * 3 * PI * lib.cos(3 * PI * x) * lib.sin(2 * PI * y)
    s_y = PI * lib.sin(PI * x) * lib.cos(PI * y) + 0.2 * 2 * PI * lib.sin(3 * PI * x) * lib.cos(2 * PI * y)
    lap = -2 * PI ** 2 * s1 - 0.2 * 13 * PI ** 2 * s2
    return s, s_x, s_y, lap


def conductivity(x, y, lib):
    """a, a_x, a_y."""
    return (2 + lib.sin(PI * x) * lib.sin(PI * y), PI * lib.cos(PI * x) * lib.sin(PI * y),
            PI * lib.sin(PI * x) * lib.cos(PI * y))


def source(x, y, t, lib):
    s, s_x, s_y, lap = s_parts(x, y, lib)
    a, a_x, a_y = conductivity(x, y, lib)
    e = lib.exp(-t)
    return -e * s - e * (a * lap + a_x * s_x + a_y * s_y)


def solution():
    g = np.linspace(0.0, 1.0, 21)
    x, y, t = np.meshgrid(g, g, np.linspace(0.0, 1.0, 11), indexing="ij")
    X = np.stack([x.ravel(), y.ravel(), t.ravel()], axis=1)
    return X, np.exp(-X[:, 2]) * s_parts(X[:, 0], X[:, 1], np)[0]


def make_problem(seed: int = 0, n_pde: int = 2000, n_bc: int = 400, n_ic: int = 400) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x_pde = DOMAIN.sample_interior(n_pde, "lhs", gen)
    x_ic = DOMAIN.sample_initial(n_ic, "lhs", gen)
    x_bc = DOMAIN.sample_boundary(n_bc, "uniform", gen)  # the lateral boundary (the square's edges) x time

    def residual(f):  # [N]
        x, y, t = f.x[..., 0], f.x[..., 1], f.x[..., 2]
        a, a_x, a_y = conductivity(x, y, torch)
        flux_div = a * (f["u_xx"][..., 0] + f["u_yy"][..., 0]) + a_x * f["u_x"][..., 0] + a_y * f["u_y"][..., 0]
        return f["u_t"][..., 0] - flux_div - source(x, y, t, torch)

    return Problem(name="heat2d_varying_coef", coords=("x", "y", "t"), lower=(0.0, 0.0, 0.0), upper=(1.0, 1.0, 1.0),
                   terms=[pde("pde", x_pde, residual, requests=("u_t", "u_x", "u_y", "u_xx", "u_yy")),
                          initial("ic", x_ic, lambda X: s_parts(X[:, 0], X[:, 1], torch)[0]),
                          dirichlet("bc", x_bc, 0.0)],
                   depth=3, width=32, epochs=20000, solution=solution, seeds=(seed,))
