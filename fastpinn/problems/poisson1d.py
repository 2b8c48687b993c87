"""A small built-in problem: 1D Poisson ``u'' = f`` on [-1, 1] with ``u = sin(k pi x)``.

Cheap enough to train end to end on a CPU in seconds; with ``k = 2`` the residual's gradients dwarf
the boundary term's, the imbalance the dynamic weights correct.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import sampling
from ..problem import Problem, Seed, dirichlet, ensemble_of, pde

__all__ = ["poisson1d"]


def poisson1d(
    seed: Seed = 0,
    *,
    k: float = 2.0,
    n_pde: int = 256,
    depth: int = 4,
    width: int = 32,
    epochs: int = 2000,
    sampler: str = "uniform",
) -> Problem:
    """``u''(x) = -(k pi)^2 sin(k pi x)``, ``u(-1) = u(1) = 0``; exact ``u = sin(k pi x)``.

    ``seed``: an int for one network, a sequence for an ensemble (points ``[S, N, 1]``).
    """
    ens = ensemble_of(poisson1d, seed, k=k, n_pde=n_pde, depth=depth, width=width, epochs=epochs, sampler=sampler)
    if ens is not None:
        return ens
    if n_pde < 1:
        raise ValueError(f"n_pde must be >= 1, got {n_pde}")
    w = k * math.pi
    seed = int(seed)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.sample(sampler, n_pde, [-1.0], [1.0], gen, dtype=torch.float64)
    x_bc = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)

    def residual(f):
        x = f.x[..., 0]
        return f["u_xx"][..., 0] + w * w * torch.sin(w * x)

    def solution():
        X = np.linspace(-1.0, 1.0, 1001)[:, None]
        return X, np.sin(w * X[:, 0])

    return Problem(
        name="poisson1d", coords=("x",), lower=(-1.0,), upper=(1.0,),
        terms=[pde("pde", x_pde, residual, requests=("u_xx",)), dirichlet("bc", x_bc, 0.0)],
        depth=depth, width=width, epochs=epochs, solution=solution, seeds=(seed,))
