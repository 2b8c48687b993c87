"""1-D wave equation u_tt = u_xx on (t, x) in [0, 1] x [0, 1] (issue 18's table, row "1-D wave").

    u(0, x) = sin(pi x),  u_t(0, x) = 0,  u(t, 0) = u(t, 1) = 0;  exact u = cos(pi t) sin(pi x).

Network 4 hidden layers of 40 (depth 5). ``fastpinn train bench/problems/wave1d.py:make_problem --epochs 2000``.
"""

import math

import numpy as np
import torch

from fastpinn import Problem, dirichlet, initial, neumann, pde, sampling


def make_problem(seed: int = 0, n_pde: int = 1000, n_ic: int = 100, n_bc: int = 100) -> Problem:
    lower, upper = (0.0, 0.0), (1.0, 1.0)  # (t, x)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.uniform(n_pde, lower, upper, gen)
    x_ic = sampling.on_face("uniform", n_ic, lower, upper, 0, 0.0, gen)
    x_bc = torch.cat([sampling.on_face("uniform", n_bc // 2, lower, upper, 1, 0.0, gen),
                      sampling.on_face("uniform", n_bc - n_bc // 2, lower, upper, 1, 1.0, gen)])

    def residual(f):
        return f["u_tt"][..., 0] - f["u_xx"][..., 0]

    def solution():
        t, x = np.meshgrid(np.linspace(0, 1, 51), np.linspace(0, 1, 51), indexing="ij")
        X = np.stack([t.ravel(), x.ravel()], axis=1)
        return X, np.cos(math.pi * X[:, 0]) * np.sin(math.pi * X[:, 1])

    return Problem(name="wave1d", coords=("t", "x"), lower=lower, upper=upper,
                   terms=[pde("pde", x_pde, residual, requests=("u_tt", "u_xx")),
                          initial("ic", x_ic, lambda X: torch.sin(math.pi * X[:, 1])),
                          neumann("ic_t", x_ic, "t", 0.0),
                          dirichlet("bc", x_bc, 0.0)],
                   depth=5, width=40, epochs=2000, solution=solution, seeds=(seed,))
