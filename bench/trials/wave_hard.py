"""User trial 2: the 1-D wave equation with the conditions built into the network (DeepXDE's "wave_1D"
example, after Wang, Wang & Perdikaris 2021):

    u_tt = 4 u_xx,  x in [0, 1], t in [0, 1],  u(0, t) = u(1, t) = 0,
    u(x, 0) = sin(pi x) + 0.5 sin(4 pi x),  u_t(x, 0) = 0,
    exact u = sin(pi x) cos(2 pi t) + 0.5 sin(4 pi x) cos(8 pi t).

``make_problem``: every condition imposed by ``HardConstraint(g, d)``, ``u = g + d N`` with
``g = u(x, 0)`` and ``d = x (1 - x) t^2`` (so ``u``, ``u_t`` at ``t = 0`` and ``u`` at ``x = 0, 1`` hold
exactly): one PDE term. ``make_soft_ic``: ``d = x (1 - x) t``, so ``u_t(x, 0) = 0`` stays a loss term
(``neumann(..., "t")`` on the ``t = 0`` points) beside the PDE term: two terms for the dynamic weights.
DeepXDE uses 360 interior/boundary/initial points and a Fourier-feature network; here 2,000 interior points
(LHS), 200 initial points, a 4 x 64 tanh MLP.

    fastpinn train bench/trials/wave_hard.py:make_problem --epochs 2000
    fastpinn train bench/trials/wave_hard.py:make_soft_ic --epochs 2000
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch

from fastpinn import MLP, Problem, neumann, pde
from fastpinn.geometry import Interval
from fastpinn.network import HardConstraint

C = 2.0
DOMAIN = Interval(0.0, 1.0) * Interval(0.0, 1.0)   # (x, t), time last


def exact(x, t):
    return np.sin(np.pi * x) * np.cos(C * np.pi * t) + 0.5 * np.sin(4 * np.pi * x) * np.cos(4 * C * np.pi * t)


def g(x):   # u(x, 0): [..., 1]
    return torch.sin(math.pi * x[..., :1]) + 0.5 * torch.sin(4 * math.pi * x[..., :1])


def d_hard(x):
    return x[..., :1] * (1 - x[..., :1]) * x[..., 1:2] ** 2


def d_soft(x):
    return x[..., :1] * (1 - x[..., :1]) * x[..., 1:2]


def residual(f):
    return f["u_tt"][..., 0] - C ** 2 * f["u_xx"][..., 0]


def solution():
    x, t = np.meshgrid(np.linspace(0, 1, 101), np.linspace(0, 1, 101), indexing="ij")
    X = np.stack([x.ravel(), t.ravel()], -1)
    return X, exact(X[:, 0], X[:, 1])


def _problem(name, seed, n_pde, d, extra_terms):
    gen = torch.Generator().manual_seed(seed)
    x_pde = DOMAIN.sample_interior(n_pde, "lhs", gen)
    return Problem(name=name, coords=("x", "t"), lower=(0.0, 0.0), upper=(1.0, 1.0),
                   terms=[pde("pde", x_pde, residual, requests=("u_tt", "u_xx"), sampler=DOMAIN)] + extra_terms(gen),
                   depth=4, width=64, epochs=20000, solution=solution, seeds=(seed,),
                   architecture=partial(MLP, output_transform=HardConstraint(g, d)))


def make_problem(seed: int = 0, n_pde: int = 2000) -> Problem:
    return _problem("wave_hard", seed, n_pde, d_hard, lambda gen: [])


def make_soft_ic(seed: int = 0, n_pde: int = 2000, n_ic: int = 200) -> Problem:
    def ic(gen):
        return [neumann("ic_t", DOMAIN.sample_initial(n_ic, "lhs", gen), "t", 0.0)]
    return _problem("wave_soft_ic", seed, n_pde, d_soft, ic)


def make_fourier(seed: int = 0, n_pde: int = 2000) -> Problem:
    """``make_problem`` on Fourier features (σ = 2, 64 features), as DeepXDE's example uses a Fourier-feature net."""
    from fastpinn.networks import FourierFeatureMLP

    problem = _problem("wave_hard_fourier", seed, n_pde, d_hard, lambda gen: [])
    problem.architecture = partial(FourierFeatureMLP, sigma=2.0, n_features=64, output_transform=HardConstraint(g, d_hard))
    return problem
