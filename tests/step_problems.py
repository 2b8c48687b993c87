"""Small problems the per-step path tests share (tests/test_fused_leaves.py, tests/test_prepared_step.py): the
tiny 1-D Poisson of issue 20's small-problem case, the paper's Burgers at a reduced size, and a 2-member Burgers
ensemble."""

from __future__ import annotations

import math

import torch

from fastpinn.problem import Problem, dirichlet, pde
from fastpinn.problems import paper


def tiny_poisson() -> Problem:
    """u_xx = -pi^2 sin(pi x) on 16 random points of [-1, 1], u(+-1) = 0; a 4 x 50 network."""
    x = torch.rand(16, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    ends = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    residual = lambda f: f["u_xx"][..., 0] + math.pi ** 2 * torch.sin(math.pi * f.x[..., 0])  # noqa: E731
    return Problem(name="poisson1d_tiny", coords=("x",), lower=(-1.0,), upper=(1.0,),
                   terms=[pde("pde", x, residual, ("u_xx",)), dirichlet("bc", ends, 0.0)], depth=4, width=50)


PROBLEMS = {
    "tiny_poisson": tiny_poisson,
    "burgers": lambda: paper.burgers(0, n_pde=300, n_ic=20, n_bc=20, depth=3, width=12),
    "burgers_ensemble": lambda: paper.burgers([0, 1], n_pde=300, n_ic=20, n_bc=20, depth=3, width=12),
}
