"""User trial: DeepXDE's "diffusion equation" (diffusion_1d) with its exact solution.

    y_t = y_xx - exp(-t) (sin(pi x) - pi^2 sin(pi x)),   x in [-1, 1], t in [0, 1],
    y(x, 0) = sin(pi x),   y(-1, t) = y(1, t) = 0,   exact y = exp(-t) sin(pi x).

DeepXDE's setup: 40 interior, 20 boundary and 10 initial points, a 3 x 32 tanh network (10,000 epochs).
Coordinates (x, t), points from geometry.Interval(-1, 1) * Interval(0, 1) as docs/problems.md describes (this
raised TypeError before the trial's fix: Python never tries __rmul__ for two Intervals).

    fastpinn train bench/trials/diffusion_1d.py:make_problem --epochs 2000
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fastpinn import Problem, dirichlet, geometry, initial, pde


def exact(t, x):
    return np.exp(-t) * np.sin(math.pi * x)


def make_problem(seed: int = 0, n_pde: int = 40, n_bc: int = 20, n_ic: int = 10) -> Problem:
    domain = geometry.Interval(-1.0, 1.0) * geometry.Interval(0.0, 1.0)  # (x, t), time last
    gen = torch.Generator().manual_seed(seed)
    x_pde = domain.sample_interior(n_pde, "uniform", gen)
    x_ic = domain.sample_initial(n_ic, "uniform", gen)
    x_bc = domain.sample_boundary(n_bc, "uniform", gen)  # the lateral boundary x = -1, 1

    def residual(f):  # [N]
        x, t = f.x[..., 0], f.x[..., 1]
        source = torch.exp(-t) * (torch.sin(math.pi * x) - math.pi ** 2 * torch.sin(math.pi * x))
        return f["u_t"][..., 0] - f["u_xx"][..., 0] + source

    def solution():
        t, x = np.meshgrid(np.linspace(0, 1, 51), np.linspace(-1, 1, 101), indexing="ij")
        X = np.stack([x.ravel(), t.ravel()], axis=1)
        return X, exact(X[:, 1], X[:, 0])

    (lower, upper) = domain.bbox
    return Problem(name="diffusion_1d", coords=("x", "t"), lower=lower, upper=upper,
                   terms=[pde("pde", x_pde, residual, requests=("u_t", "u_xx")),
                          initial("ic", x_ic, lambda X: torch.sin(math.pi * X[:, 0])),
                          dirichlet("bc", x_bc, 0.0)],
                   depth=3, width=32, epochs=10000, solution=solution, seeds=(seed,))
