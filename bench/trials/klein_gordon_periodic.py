"""User trial 2: the nonlinear Klein-Gordon equation (the form of DeepXDE's "Klein-Gordon" example,
u_tt + alpha u_xx + beta u + gamma u^k = 0 with alpha = -1, beta = 0, gamma = 1, k = 3), here periodic in x and
without a source:

    u_tt = u_xx - u^3,  x in [-1, 1] periodic (u and u_x),  t in [0, 1],
    u(x, 0) = 1.5 cos(pi x),  u_t(x, 0) = 0.

DeepXDE's version has Dirichlet ends, a source with exact solution x cos t and t in [0, 10]; with the periodic
ends and no source there is no closed form: the reference is a Fourier pseudo-spectral solution (128 modes,
scipy's DOP853, rtol 1e-10; 1e-9 from a 256-mode run). Five terms: PDE, u(x, 0), u_t(x, 0) (``neumann`` in
t), periodic u and periodic u_x; 2,000 interior points (LHS), 200 initial points, 100 periodic pairs, 4 x 50.

    fastpinn train bench/trials/klein_gordon_periodic.py:make_problem --epochs 2000
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from fastpinn import Problem, initial, neumann, pde, periodic
from fastpinn.geometry import Interval

DOMAIN = Interval(-1.0, 1.0) * Interval(0.0, 1.0)   # (x, t)
T_END = 1.0


def u0(x):
    return 1.5 * np.cos(np.pi * x)


@functools.lru_cache(maxsize=None)
def reference(modes: int = 128, nt: int = 101):
    """``(x[modes], t[nt], U[nt, modes])`` on the periodic grid x_j = -1 + 2 j / modes."""
    from scipy.integrate import solve_ivp

    x = -1.0 + 2.0 * np.arange(modes) / modes
    k = np.pi * np.fft.fftfreq(modes, d=1.0 / modes)     # wave numbers of period 2

    def rhs(_, s):
        u, v = s[:modes], s[modes:]
        uxx = np.real(np.fft.ifft(-(k ** 2) * np.fft.fft(u)))
        return np.concatenate([v, uxx - u ** 3])

    t = np.linspace(0.0, T_END, nt)
    sol = solve_ivp(rhs, (0.0, T_END), np.concatenate([u0(x), np.zeros(modes)]), method="DOP853", t_eval=t,
                    rtol=1e-10, atol=1e-10)
    return x, t, sol.y[:modes].T.copy()


def solution():
    x, t, U = reference()
    xx, tt = np.meshgrid(x, t)
    return np.stack([xx.ravel(), tt.ravel()], -1), U.ravel()


def make_problem(seed: int = 0, n_pde: int = 2000, n_ic: int = 200, n_bc: int = 100) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x_pde = DOMAIN.sample_interior(n_pde, "lhs", gen)
    x_ic = DOMAIN.sample_initial(n_ic, "lhs", gen)
    t_bc = torch.rand(n_bc, 1, generator=gen, dtype=torch.float64) * T_END
    lo = torch.cat([torch.full_like(t_bc, -1.0), t_bc], -1)
    hi = torch.cat([torch.full_like(t_bc, 1.0), t_bc], -1)

    def residual(f):
        u = f["u"][..., 0]
        return f["u_tt"][..., 0] - f["u_xx"][..., 0] + u ** 3

    return Problem(name="klein_gordon_periodic", coords=("x", "t"), lower=(-1.0, 0.0), upper=(1.0, T_END),
                   terms=[pde("pde", x_pde, residual, requests=("u", "u_tt", "u_xx"), sampler=DOMAIN),
                          initial("ic", x_ic, lambda p: 1.5 * torch.cos(torch.pi * p[:, 0])),
                          neumann("ic_t", x_ic, "t", 0.0),
                          periodic("per_u", lo, hi, "u"),
                          periodic("per_ux", lo, hi, "u_x")],
                   depth=4, width=50, epochs=20000, solution=solution, seeds=(seed,))
