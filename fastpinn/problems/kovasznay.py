"""A system of PDEs with a vector solution: steady incompressible Navier–Stokes, Kovasznay flow.

Kovasznay (1948) found the closed-form laminar flow behind a grid at Reynolds number ``Re``:
``u = 1 - e^{lam x} cos(2 pi y)``, ``v = lam / (2 pi) e^{lam x} sin(2 pi y)``, ``p = (1 - e^{2 lam x}) / 2``
with ``lam = Re / 2 - sqrt(Re^2 / 4 + 4 pi^2)``. It solves
``u u_x + v u_y + p_x - (u_xx + u_yy) / Re = 0``, ``u v_x + v v_y + p_y - (v_xx + v_yy) / Re = 0`` and
``u_x + v_y = 0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .. import sampling
from ..problem import Problem, Seed, dirichlet, ensemble_of, pde

__all__ = ["kovasznay", "kovasznay_solution"]


def kovasznay_solution(x: Tensor, y: Tensor, re: float = 20.0) -> Tensor:
    """``(u, v, p)`` at points ``x[...]``, ``y[...]``: ``[..., 3]``."""
    lam = re / 2.0 - math.sqrt(re ** 2 / 4.0 + 4.0 * math.pi ** 2)
    e = torch.exp(lam * x)
    u = 1.0 - e * torch.cos(2.0 * math.pi * y)
    v = lam / (2.0 * math.pi) * e * torch.sin(2.0 * math.pi * y)
    p = 0.5 * (1.0 - e * e)
    return torch.stack([u, v, p], dim=-1)


def kovasznay(seed: Seed = 0, *, re: float = 20.0, n_pde: int = 2_000, n_bc: int = 400, depth: int = 5,
              width: int = 50, epochs: int = 10_000) -> Problem:
    """Kovasznay flow on ``[-0.5, 1] x [-0.5, 1.5]``, outputs ``(u, v, p)``.

    Terms: ``momentum_x`` (the reference: highest derivative order), ``momentum_y``, ``continuity`` and
    ``bc`` (the exact ``(u, v, p)`` on ``n_bc`` boundary points, a vector Dirichlet condition; ``p``
    there also fixes the pressure's free constant). The reference solution is closed-form.

    Only ``bc`` is adaptive: the three residuals are the PDE and keep weight 1, as the paper keeps
    ``lambda_PDE = 1``. (Making ``momentum_y`` adaptive against ``momentum_x`` drove its weight to
    ~4e4 -- its gradient starts tiny because ``v`` does -- and DN-PINN then lost to PINN: rel. L2 0.23
    vs 0.17 after 3,000 epochs; with ``bc`` alone adaptive DN-PINN reached 0.019.) A sequence of seeds
    builds the ensemble problem.
    """
    ens = ensemble_of(kovasznay, seed, re=re, n_pde=n_pde, n_bc=n_bc, depth=depth, width=width, epochs=epochs)
    if ens is not None:
        return ens
    if isinstance(re, bool) or not isinstance(re, (int, float)) or not (re > 0 and math.isfinite(re)):
        raise ValueError(f"re must be a positive number, got {re!r}")
    for name, n in (("n_pde", n_pde), ("n_bc", n_bc)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 4:
            raise ValueError(f"{name} must be an integer >= 4, got {n!r}")
    lower, upper = (-0.5, -0.5), (1.0, 1.5)
    gen = torch.Generator().manual_seed(int(seed))
    x_pde = sampling.uniform(n_pde, lower, upper, gen, dtype=torch.float64)
    per_edge = [n_bc // 4 + (1 if i < n_bc % 4 else 0) for i in range(4)]
    edges = [(0, lower[0]), (0, upper[0]), (1, lower[1]), (1, upper[1])]
    x_bc = torch.cat([sampling.on_face("uniform", n, lower, upper, c, v, gen, dtype=torch.float64) for n, (c, v) in zip(per_edge, edges)])
    nu = 1.0 / re

    def momentum_x(f):
        U, Ux, Uy = f["u"], f["u_x"], f["u_y"]
        u, v = U[..., 0], U[..., 1]
        return u * Ux[..., 0] + v * Uy[..., 0] + Ux[..., 2] - nu * (f["u_xx"][..., 0] + f["u_yy"][..., 0])

    def momentum_y(f):
        U, Ux, Uy = f["u"], f["u_x"], f["u_y"]
        u, v = U[..., 0], U[..., 1]
        return u * Ux[..., 1] + v * Uy[..., 1] + Uy[..., 2] - nu * (f["u_xx"][..., 1] + f["u_yy"][..., 1])

    def continuity(f):
        return f["u_x"][..., 0] + f["u_y"][..., 1]

    def solution() -> tuple[np.ndarray, np.ndarray]:
        xs = torch.linspace(lower[0], upper[0], 101, dtype=torch.float64)
        ys = torch.linspace(lower[1], upper[1], 101, dtype=torch.float64)
        X = sampling.grid([xs, ys], dtype=torch.float64)
        return X.numpy(), kovasznay_solution(X[:, 0], X[:, 1], re).numpy()

    second = ("u", "u_x", "u_y", "u_xx", "u_yy")
    return Problem(
        name="kovasznay", coords=("x", "y"), lower=lower, upper=upper,
        terms=[pde("momentum_x", x_pde, momentum_x, second),
               pde("momentum_y", x_pde, momentum_y, second),
               pde("continuity", x_pde, continuity, ("u_x", "u_y")),
               dirichlet("bc", x_bc, lambda X: kovasznay_solution(X[:, 0], X[:, 1], re), out_dim=3)],
        depth=depth, width=width, out_dim=3, epochs=epochs, solution=solution, seeds=(int(seed),),
        reference_term="momentum_x", adaptive=(False, False, False, True))
