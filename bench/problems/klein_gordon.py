"""DeepXDE's Klein-Gordon: u_tt - u_xx + u^2 = -x cos t + x^2 cos^2 t on x in [-1, 1], t in [0, 10].

u(x, 0) = x, u_t(x, 0) = 0, u(-1, t) = -cos t, u(1, t) = cos t; exact u = x cos t. Network 2 hidden layers
of 40 as DeepXDE's example (its 30,000 / 1,500 / 1,500 points reduced for a CPU).
"""

import numpy as np
import torch

from fastpinn import Problem, dirichlet, initial, neumann, pde, sampling


def make_problem(seed: int = 0, n_pde: int = 2000, n_ic: int = 200, n_bc: int = 200) -> Problem:
    lower, upper = (-1.0, 0.0), (1.0, 10.0)  # (x, t)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.uniform(n_pde, lower, upper, gen)
    x_ic = sampling.on_face("uniform", n_ic, lower, upper, 1, 0.0, gen)
    x_bc = torch.cat([sampling.on_face("uniform", n_bc // 2, lower, upper, 0, -1.0, gen),
                      sampling.on_face("uniform", n_bc - n_bc // 2, lower, upper, 0, 1.0, gen)])

    def residual(f):
        x, t = f.x[..., 0], f.x[..., 1]
        u = f["u"][..., 0]
        return f["u_tt"][..., 0] - f["u_xx"][..., 0] + u ** 2 + x * torch.cos(t) - (x * torch.cos(t)) ** 2

    def solution():
        x, t = np.meshgrid(np.linspace(-1, 1, 51), np.linspace(0, 10, 101), indexing="ij")
        X = np.stack([x.ravel(), t.ravel()], axis=1)
        return X, X[:, 0] * np.cos(X[:, 1])

    return Problem(name="klein_gordon", coords=("x", "t"), lower=lower, upper=upper,
                   terms=[pde("pde", x_pde, residual, requests=("u", "u_tt", "u_xx")),
                          initial("ic", x_ic, lambda X: X[:, 0]),
                          neumann("ic_t", x_ic, "t", 0.0),
                          dirichlet("bc", x_bc, lambda X: X[:, 0] * torch.cos(X[:, 1]))],
                   depth=3, width=40, epochs=2000, solution=solution, seeds=(seed,))
