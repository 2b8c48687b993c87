"""User trial 2: identify a space-dependent reaction rate (DeepXDE's "inverse problem for the
diffusion-reaction system with a space-dependent reaction rate", Lu et al. 2021):

    lambda u_xx - k(x) u = sin(2 pi x),  x in [0, 1],  u(0) = u(1) = 0,  lambda = 0.01,
    true k(x) = 0.1 + exp(-0.5 (x - 0.5)^2 / 0.15^2), unknown: the network has two outputs (u, k).

u is observed at n_obs evenly spaced points (no noise), k nowhere: ``data(..., output=0)`` and
``dirichlet(..., output=0)`` constrain the first output only (without ``output=`` a one-column value applies
to every output, and k would be fitted to u's observations and boundary values too). The reference (u and k on 201 points) comes
from a second-order finite-difference solve on 4,001 nodes (2e-7 from an 8,001-node one). 100 collocation
points (LHS), a 3 x 20 tanh MLP.

    fastpinn train bench/trials/reaction_rate_inverse.py:make_problem --epochs 3000
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from fastpinn import Problem, data, dirichlet, pde
from fastpinn.geometry import Interval

LAM = 0.01
DOMAIN = Interval(0.0, 1.0)


def k_true(x):
    return 0.1 + np.exp(-0.5 * (x - 0.5) ** 2 / 0.15 ** 2)


@functools.lru_cache(maxsize=None)
def fd_solution(nodes: int = 4001):
    """``(x[nodes], u[nodes])`` of lambda u'' - k u = sin(2 pi x), u(0) = u(1) = 0."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import spsolve

    x = np.linspace(0.0, 1.0, nodes)
    h = x[1] - x[0]
    xi = x[1:-1]
    m = len(xi)
    A = diags([np.full(m - 1, LAM / h ** 2), -2 * LAM / h ** 2 - k_true(xi), np.full(m - 1, LAM / h ** 2)], [-1, 0, 1])
    u = np.zeros(nodes)
    u[1:-1] = spsolve(A.tocsc(), np.sin(2 * np.pi * xi))
    return x, u


def u_at(x):
    xs, us = fd_solution()
    return np.interp(x, xs, us)


def solution():
    x = np.linspace(0.0, 1.0, 201)
    return x[:, None], np.stack([u_at(x), k_true(x)], -1)


def make_problem(seed: int = 0, n_pde: int = 100, n_obs: int = 20) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x_pde = DOMAIN.sample_interior(n_pde, "lhs", gen)
    x_obs = torch.linspace(0.0, 1.0, n_obs, dtype=torch.float64)[:, None]
    u_obs = torch.from_numpy(u_at(x_obs[:, 0].numpy()))

    def residual(f):
        u, k = f["u"][..., 0], f["u"][..., 1]
        return LAM * f["u_xx"][..., 0] - k * u - torch.sin(2 * torch.pi * f.x[..., 0])

    return Problem(name="reaction_rate_inverse", coords=("x",), lower=(0.0,), upper=(1.0,),
                   terms=[pde("pde", x_pde, residual, requests=("u", "u_xx")),
                          dirichlet("bc", torch.tensor([[0.0], [1.0]], dtype=torch.float64), 0.0, output=0),
                          data("obs", x_obs, u_obs, output=0)],
                   depth=3, width=20, out_dim=2, epochs=20000, solution=solution, seeds=(seed,))
