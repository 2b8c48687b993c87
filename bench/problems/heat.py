"""DeepXDE's heat equation: u_t = 0.4 u_xx on (x, t) in [0, 1] x [0, 1], u(x, 0) = sin(pi x), u = 0 at x = 0, 1.

Exact u = exp(-0.4 pi^2 t) sin(pi x). Network 3 hidden layers of 20 as DeepXDE's example.
"""

import math

import numpy as np
import torch

from fastpinn import Problem, dirichlet, initial, pde, sampling

A = 0.4


def make_problem(seed: int = 0, n_pde: int = 1000, n_ic: int = 100, n_bc: int = 100) -> Problem:
    lower, upper = (0.0, 0.0), (1.0, 1.0)  # (x, t)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.uniform(n_pde, lower, upper, gen)
    x_ic = sampling.on_face("uniform", n_ic, lower, upper, 1, 0.0, gen)
    x_bc = torch.cat([sampling.on_face("uniform", n_bc // 2, lower, upper, 0, 0.0, gen),
                      sampling.on_face("uniform", n_bc - n_bc // 2, lower, upper, 0, 1.0, gen)])

    def solution():
        x, t = np.meshgrid(np.linspace(0, 1, 51), np.linspace(0, 1, 51), indexing="ij")
        X = np.stack([x.ravel(), t.ravel()], axis=1)
        return X, np.exp(-A * math.pi ** 2 * X[:, 1]) * np.sin(math.pi * X[:, 0])

    return Problem(name="heat", coords=("x", "t"), lower=lower, upper=upper,
                   terms=[pde("pde", x_pde, lambda f: f["u_t"][..., 0] - A * f["u_xx"][..., 0], ("u_t", "u_xx")),
                          initial("ic", x_ic, lambda X: torch.sin(math.pi * X[:, 0])),
                          dirichlet("bc", x_bc, 0.0)],
                   depth=4, width=20, epochs=6000, solution=solution, seeds=(seed,))
