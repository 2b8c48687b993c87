"""DeepXDE's Beltrami flow: 3-D unsteady incompressible Navier-Stokes (Re = 1, a = d = 1) on [-1, 1]^3 x [0, 1].

Outputs (u, v, w, p); ten terms as DeepXDE's example: three momentum equations and continuity, and a
Dirichlet condition and an initial condition on each velocity component (the exact Beltrami flow of Ethier
& Steinman). Network 4 hidden layers of 50 as DeepXDE's; its 50,000 / 5,000 / 5,000 points reduced for a
CPU. The rel. L2 error is over (u, v, w, p) (p is fixed only up to a constant by these conditions).
"""

import numpy as np
import torch

from fastpinn import Problem, Term, pde, sampling

A, D, RE = 1.0, 1.0, 1.0


def beltrami(x, y, z, t, lib=torch):
    """The exact (u, v, w, p), each shaped like the coordinates."""
    e, sin, cos = lib.exp, lib.sin, lib.cos
    decay = e(-D * D * t)
    u = -A * (e(A * x) * sin(A * y + D * z) + e(A * z) * cos(A * x + D * y)) * decay
    v = -A * (e(A * y) * sin(A * z + D * x) + e(A * x) * cos(A * y + D * z)) * decay
    w = -A * (e(A * z) * sin(A * x + D * y) + e(A * y) * cos(A * z + D * x)) * decay
    p = -0.5 * A * A * (e(2 * A * x) + e(2 * A * y) + e(2 * A * z)
                        + 2 * sin(A * x + D * y) * cos(A * z + D * x) * e(A * (y + z))
                        + 2 * sin(A * y + D * z) * cos(A * x + D * y) * e(A * (z + x))
                        + 2 * sin(A * z + D * x) * cos(A * y + D * z) * e(A * (x + y))) * decay ** 2
    return u, v, w, p


def _component(name, points, i):
    """Velocity component ``i`` equal to the exact flow at ``points``."""
    target = torch.stack(beltrami(*points.unbind(-1)), dim=-1)[:, i:i + 1]
    return Term(name, (points,), lambda f, tg: f["u"][..., i] - tg[..., 0], ("u",), None, target)


def make_problem(seed: int = 0, n_pde: int = 1000, n_bc: int = 300, n_ic: int = 200) -> Problem:
    lower, upper = (-1.0, -1.0, -1.0, 0.0), (1.0, 1.0, 1.0, 1.0)  # (x, y, z, t)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.uniform(n_pde, lower, upper, gen)
    x_ic = sampling.on_face("uniform", n_ic, lower, upper, 3, 0.0, gen)
    faces = [(c, v) for c in range(3) for v in (-1.0, 1.0)]
    x_bc = torch.cat([sampling.on_face("uniform", n_bc // 6, lower, upper, c, v, gen) for c, v in faces])

    def momentum(i):
        d = ("u_x", "u_y", "u_z")
        def residual(f):
            U = f["u"]
            conv = sum(U[..., j] * f[d[j]][..., i] for j in range(3))
            lap = f["u_xx"][..., i] + f["u_yy"][..., i] + f["u_zz"][..., i]
            return f["u_t"][..., i] + conv + f[d[i]][..., 3] - lap / RE
        return residual

    def continuity(f):
        return f["u_x"][..., 0] + f["u_y"][..., 1] + f["u_z"][..., 2]

    def solution():
        g = np.linspace(-1, 1, 9)
        X = np.stack(np.meshgrid(g, g, g, np.linspace(0, 1, 5), indexing="ij"), -1).reshape(-1, 4)
        return X, np.stack(beltrami(*X.T, lib=np), axis=-1)

    requests = ("u", "u_t", "u_x", "u_y", "u_z", "u_xx", "u_yy", "u_zz")
    return Problem(name="beltrami", coords=("x", "y", "z", "t"), lower=lower, upper=upper,
                   terms=[pde("momentum_x", x_pde, momentum(0), requests),
                          pde("momentum_y", x_pde, momentum(1), requests),
                          pde("momentum_z", x_pde, momentum(2), requests),
                          pde("continuity", x_pde, continuity, ("u_x", "u_y", "u_z")),
                          *[_component(f"bc_{c}", x_bc, i) for i, c in enumerate("uvw")],
                          *[_component(f"ic_{c}", x_ic, i) for i, c in enumerate("uvw")]],
                   depth=5, width=50, out_dim=4, epochs=300, solution=solution, seeds=(seed,))
