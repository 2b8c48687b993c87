"""DeepXDE's Euler beam: u'''' = -1 on [0, 1], clamped at 0 (u = u' = 0), free at 1 (u'' = u''' = 0).

Exact u = -x^4/24 + x^3/6 - x^2/4. As DeepXDE's example: 10 collocation points, network 3 hidden layers
of 20, Adam lr 1e-3, 10,000 epochs. Each boundary condition is its own term on one point, against a
fourth-order residual: the case of "few points, high derivative order".
"""

import numpy as np
import torch

from fastpinn import Problem, dirichlet, neumann, pde, sampling


def make_problem(seed: int = 0, n_pde: int = 10) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x = sampling.uniform(n_pde, [0.0], [1.0], gen)
    left, right = torch.tensor([[0.0]]), torch.tensor([[1.0]])

    def solution():
        X = np.linspace(0, 1, 101).reshape(-1, 1)
        s = X[:, 0]
        return X, -s ** 4 / 24 + s ** 3 / 6 - s ** 2 / 4

    return Problem(name="euler_beam", coords=("x",), lower=(0.0,), upper=(1.0,),
                   terms=[pde("pde", x, lambda f: f["u_xxxx"][..., 0] + 1.0, "u_xxxx"),
                          dirichlet("u0", left, 0.0),
                          neumann("ux0", left, "x", 0.0),
                          pde("uxx1", right, lambda f: f["u_xx"][..., 0], "u_xx"),
                          pde("uxxx1", right, lambda f: f["u_xxx"][..., 0], "u_xxx")],
                   depth=4, width=20, epochs=10_000, solution=solution, seeds=(seed,))
