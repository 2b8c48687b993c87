"""User trial 3: steady lid-driven cavity flow (PINNacle's "NS 2d-C", Hao et al. 2023), three outputs:

    u u_x + v u_y + p_x - nu (u_xx + u_yy) = 0,
    u v_x + v v_y + p_y - nu (v_xx + v_yy) = 0,      (x, y) in [0, 1]^2,  nu = 0.01 (Re = 100)
    u_x + v_y = 0,
    (u, v) = (4 x (1 - x), 0) on the lid y = 1,  (u, v) = (0, 0) on the other three walls,
    p(0.5, 0.5) = 0 (the pressure is fixed up to a constant; this pins it).

The lid profile vanishes at the corners, so the flow has no corner singularity. The network has three
outputs (u, v, p); the walls and the lid constrain outputs 0 and 1 only (``output=[0, 1]``), the pressure
pin output 2. Six terms: three PDE terms on shared points, walls, lid, pressure pin.

The reference is computed here: a stream-function / vorticity finite-difference solve on a 65 x 65 grid
(second-order central differences, Thom's wall vorticity, explicit pseudo-time steps until the vorticity's
rate of change is below 1e-8), u = psi_y and v = -psi_x by central differences, and p integrated in the least-squares
sense from grad p = nu lap(u) - (u . grad) u at the interior nodes, then shifted to p(0.5, 0.5) = 0. Scored
on the 63 x 63 interior nodes (from a 33 x 33 solve it differs by 1.4 % in u, 3.3 % in v, 4.4 % in p:
the 65 x 65 one, second order, is about a third of that from the exact solution). 2,000 collocation points (LHS), 300 wall and 100 lid points, a 4 x 40 tanh MLP.

    fastpinn train bench/trials/lid_driven_cavity.py:make_problem --epochs 2000
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from fastpinn import Problem, data, dirichlet, pde
from fastpinn.geometry import Rectangle

NU = 0.01
DOMAIN = Rectangle((0.0, 0.0), (1.0, 1.0))


def lid_speed(x):
    return 4 * x * (1 - x)


def _laplacian(m: int, h: float):
    """The 5-point Laplacian on the m x m interior nodes (Dirichlet boundary), index i * m + j for (x_i, y_j)."""
    from scipy.sparse import diags, identity, kron

    d2 = diags([np.ones(m - 1), -2 * np.ones(m), np.ones(m - 1)], [-1, 0, 1]) / h ** 2
    eye = identity(m)
    return (kron(d2, eye) + kron(eye, d2)).tocsc()


@functools.lru_cache(maxsize=None)
def fd_solution(n: int = 65):
    """``(g[n], u, v, p)``, each ``[n, n]`` indexed [x, y] on the grid g x g (p on the interior only: NaN on the walls)."""
    from scipy.sparse import diags, identity, kron, vstack
    from scipy.sparse.linalg import lsqr, splu

    g = np.linspace(0.0, 1.0, n)
    h = g[1] - g[0]
    m = n - 2
    poisson = splu(_laplacian(m, h))
    lid = lid_speed(g)
    psi = np.zeros((n, n))
    omega = np.zeros((n, n))
    dt = 0.2 * h ** 2 / NU  # below the explicit diffusion limit h^2 / (4 nu) and the convective h / max|u|
    for step in range(400000):
        # Thom's formula for the wall vorticity from the current stream function
        omega[0, :] = -2 * psi[1, :] / h ** 2
        omega[-1, :] = -2 * psi[-2, :] / h ** 2
        omega[:, 0] = -2 * psi[:, 1] / h ** 2
        omega[:, -1] = -2 * (psi[:, -2] + h * lid) / h ** 2
        u = (psi[1:-1, 2:] - psi[1:-1, :-2]) / (2 * h)
        v = -(psi[2:, 1:-1] - psi[:-2, 1:-1]) / (2 * h)
        w_x = (omega[2:, 1:-1] - omega[:-2, 1:-1]) / (2 * h)
        w_y = (omega[1:-1, 2:] - omega[1:-1, :-2]) / (2 * h)
        lap_w = (omega[2:, 1:-1] + omega[:-2, 1:-1] + omega[1:-1, 2:] + omega[1:-1, :-2] - 4 * omega[1:-1, 1:-1]) / h ** 2
        rate = NU * lap_w - u * w_x - v * w_y  # steady when zero
        omega[1:-1, 1:-1] += dt * rate
        psi[1:-1, 1:-1] = poisson.solve(-omega[1:-1, 1:-1].ravel()).reshape(m, m)
        if np.abs(rate).max() < 1e-8:
            break
    else:
        raise RuntimeError(f"the cavity solve did not reach a steady state (last rate {np.abs(rate).max():.2e})")
    U = np.zeros((n, n))
    V = np.zeros((n, n))
    U[:, -1] = lid
    U[1:-1, 1:-1] = (psi[1:-1, 2:] - psi[1:-1, :-2]) / (2 * h)
    V[1:-1, 1:-1] = -(psi[2:, 1:-1] - psi[:-2, 1:-1]) / (2 * h)

    def lap_of(F):
        return (F[2:, 1:-1] + F[:-2, 1:-1] + F[1:-1, 2:] + F[1:-1, :-2] - 4 * F[1:-1, 1:-1]) / h ** 2

    def ddx(F):
        return (F[2:, 1:-1] - F[:-2, 1:-1]) / (2 * h)

    def ddy(F):
        return (F[1:-1, 2:] - F[1:-1, :-2]) / (2 * h)

    ui, vi = U[1:-1, 1:-1], V[1:-1, 1:-1]
    px = NU * lap_of(U) - ui * ddx(U) - vi * ddy(U)
    py = NU * lap_of(V) - ui * ddx(V) - vi * ddy(V)
    # least squares: forward differences between neighbouring interior nodes = the mean of their gradients
    f1 = diags([-np.ones(m), np.ones(m - 1)], [0, 1], shape=(m - 1, m)) / h
    Gx, Gy = kron(f1, identity(m)), kron(identity(m), f1)
    bx = 0.5 * (px[1:, :] + px[:-1, :]).ravel()
    by = 0.5 * (py[:, 1:] + py[:, :-1]).ravel()
    p = lsqr(vstack([Gx, Gy]).tocsr(), np.concatenate([bx, by]), atol=1e-14, btol=1e-14, iter_lim=20000)[0]
    p = p.reshape(m, m)
    P = np.full((n, n), np.nan)
    P[1:-1, 1:-1] = p - p[(n - 1) // 2 - 1, (n - 1) // 2 - 1]
    return g, U, V, P


def solution():
    g, U, V, P = fd_solution()
    x, y = np.meshgrid(g[1:-1], g[1:-1], indexing="ij")
    X = np.stack([x.ravel(), y.ravel()], axis=1)
    return X, np.stack([U[1:-1, 1:-1].ravel(), V[1:-1, 1:-1].ravel(), P[1:-1, 1:-1].ravel()], axis=1)


def make_problem(seed: int = 0, n_pde: int = 2000, n_bc: int = 300, n_lid: int = 100) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x_pde = DOMAIN.sample_interior(n_pde, "lhs", gen)
    x_walls = DOMAIN.sample_boundary(n_bc, "uniform", gen, where=lambda X: X[..., 1] < 1 - 1e-9)
    x_lid = DOMAIN.sample_boundary(n_lid, "uniform", gen, where=lambda X: X[..., 1] > 1 - 1e-9)
    lid_values = torch.stack([lid_speed(x_lid[:, 0]), torch.zeros(n_lid, dtype=x_lid.dtype)], 1)  # [N, 2]
    x_pin = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    requests = ("u", "u_x", "u_y", "u_xx", "u_yy")

    def momentum(axis):
        def residual(f):  # [N]
            u, v = f["u"][..., 0], f["u"][..., 1]
            q_x, q_y = f["u_x"][..., axis], f["u_y"][..., axis]
            grad_p = f["u_x"][..., 2] if axis == 0 else f["u_y"][..., 2]
            return u * q_x + v * q_y + grad_p - NU * (f["u_xx"][..., axis] + f["u_yy"][..., axis])
        return residual

    def continuity(f):
        return f["u_x"][..., 0] + f["u_y"][..., 1]

    return Problem(name="lid_driven_cavity", coords=("x", "y"), lower=(0.0, 0.0), upper=(1.0, 1.0),
                   terms=[pde("momentum_x", x_pde, momentum(0), requests=requests),
                          pde("momentum_y", x_pde, momentum(1), requests=requests),
                          pde("continuity", x_pde, continuity, requests=("u_x", "u_y")),
                          dirichlet("walls", x_walls, 0.0, output=[0, 1]),
                          dirichlet("lid", x_lid, lid_values, out_dim=2, output=[0, 1]),
                          data("p_pin", x_pin, 0.0, output=2)],
                   depth=4, width=40, out_dim=3, epochs=20000, solution=solution, seeds=(seed,))
