"""DeepXDE's Helmholtz 2-D (Dirichlet): -u_xx - u_yy - k^2 u = k^2 sin(kx) sin(ky) on [0, 1]^2, u = 0 on
the boundary, k = 4 pi (n = 2 wavelengths); exact u = sin(kx) sin(ky).

As DeepXDE's example: 10 points per wavelength (a 20 x 20 grid of collocation points, 80 boundary points),
3 hidden layers of 150 -- with tanh instead of its sin activation (the issue's row).
"""

import math

import numpy as np
import torch

from fastpinn import Problem, dirichlet, pde, sampling

K = 4 * math.pi


def make_problem(seed: int = 0, n_pde: int = 400, n_bc: int = 80) -> Problem:
    lower, upper = (0.0, 0.0), (1.0, 1.0)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.uniform(n_pde, lower, upper, gen)
    per = [n_bc // 4] * 4
    x_bc = torch.cat([sampling.on_face("uniform", n, lower, upper, c, v, gen)
                      for n, (c, v) in zip(per, [(0, 0.0), (0, 1.0), (1, 0.0), (1, 1.0)])])

    def residual(f):
        x, y = f.x[..., 0], f.x[..., 1]
        return (-f["u_xx"][..., 0] - f["u_yy"][..., 0] - K ** 2 * f["u"][..., 0]
                - K ** 2 * torch.sin(K * x) * torch.sin(K * y))

    def solution():
        x, y = np.meshgrid(np.linspace(0, 1, 101), np.linspace(0, 1, 101), indexing="ij")
        X = np.stack([x.ravel(), y.ravel()], axis=1)
        return X, np.sin(K * X[:, 0]) * np.sin(K * X[:, 1])

    return Problem(name="helmholtz2d", coords=("x", "y"), lower=lower, upper=upper,
                   terms=[pde("pde", x_pde, residual, ("u", "u_xx", "u_yy")), dirichlet("bc", x_bc, 0.0)],
                   depth=4, width=150, epochs=3000, solution=solution, seeds=(seed,))
