"""User trial: DeepXDE's "Poisson equation in 1D with Dirichlet/Robin boundary conditions".

    u'' = 2 on x in [-1, 1],   u(-1) = 0 (Dirichlet),   u'(1) = u(1) (Robin),   exact u = (x + 1)^2.

DeepXDE's setup: 16 interior points (Hammersley there, Latin hypercube here), the two end points, a 3 x 50 tanh
network. Written from the README and
docs/problems.md only: the Robin condition a u + b du/dn = value with the outward normal (+1 at x = 1) is
robin("robin", x1, a=-1, b=1, value=0, domain=Interval(-1, 1), coords=("x",)).

    fastpinn train bench/trials/poisson_robin.py:make_problem --epochs 2000
"""

from __future__ import annotations

import numpy as np
import torch

from fastpinn import Problem, dirichlet, geometry, pde, robin


def make_problem(seed: int = 0, n_pde: int = 16) -> Problem:
    domain = geometry.Interval(-1.0, 1.0)
    gen = torch.Generator().manual_seed(seed)
    # Latin hypercube: 16 uniform random points left (0.44, 1] empty for seed 1, and every scheme failed there
    x_pde = domain.sample_interior(n_pde, "lhs", gen)
    x_left = torch.tensor([[-1.0]], dtype=torch.float64)
    x_right = torch.tensor([[1.0]], dtype=torch.float64)

    def residual(f):  # f["u_xx"]: [N, 1] -> [N]
        return f["u_xx"][..., 0] - 2.0

    def solution():
        x = np.linspace(-1.0, 1.0, 201)[:, None]
        return x, (x[:, 0] + 1.0) ** 2

    return Problem(name="poisson_robin", coords=("x",), lower=(-1.0,), upper=(1.0,),
                   terms=[pde("pde", x_pde, residual, requests="u_xx"),
                          dirichlet("left", x_left, 0.0),
                          robin("right", x_right, a=-1.0, b=1.0, value=0.0, domain=domain, coords=("x",))],
                   depth=3, width=50, epochs=10000, solution=solution, seeds=(seed,))
