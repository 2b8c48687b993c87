"""The three problems of the DN-PINN paper (Deguchi & Asai 2023), with the paper's protocol.

Domains are the paper's (not the reference code's data-file grids): Burgers t in [0, 1]; Poisson on
[0, 1]^2; Allen-Cahn t in [0, 1], x in [-1, 1]. Collocation points are drawn once, uniformly at random
from the seed, and never resampled. Passing a sequence of seeds builds an ensemble problem (points
``[S, N, d]``) whose member ``s`` equals the single problem of ``seed[s]``.
"""

from __future__ import annotations

import math

import torch

from .. import sampling
from ..problem import Problem, Seed, dirichlet, ensemble_of, initial, pde, periodic

__all__ = ["burgers", "poisson", "allen_cahn", "PROBLEMS"]

def _check_counts(**counts: int) -> None:
    for name, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {n!r}")


def burgers(seed: Seed = 0, *, n_pde: int = 10_000, n_ic: int = 100, n_bc: int = 200, nu: float = 0.01 / math.pi,
            depth: int = 9, width: int = 20, epochs: int = 30_000, sampler: str = "uniform") -> Problem:
    """1D viscous Burgers: ``u_t + u u_x - nu u_xx = 0``, ``u(0, x) = -sin(pi x)``, ``u(t, +-1) = 0``.

    Coordinates ``("t", "x")`` on ``[0, 1] x [-1, 1]``; ``n_bc`` boundary points, half per side.
    Terms: ``pde``, ``ic``, ``bc`` (both constraints adaptive).
    """
    ens = ensemble_of(burgers, seed, n_pde=n_pde, n_ic=n_ic, n_bc=n_bc, nu=nu, depth=depth, width=width,
                      epochs=epochs, sampler=sampler)
    if ens is not None:
        return ens
    _check_counts(n_pde=n_pde, n_ic=n_ic, n_bc=n_bc)
    lower, upper = (0.0, -1.0), (1.0, 1.0)
    seed = int(seed)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.sample(sampler, n_pde, lower, upper, gen, dtype=torch.float64)
    x_ic = sampling.on_face(sampler, n_ic, lower, upper, 0, 0.0, gen, dtype=torch.float64)
    half = n_bc // 2
    x_bc = torch.cat([sampling.on_face(sampler, half, lower, upper, 1, -1.0, gen, dtype=torch.float64),
                      sampling.on_face(sampler, n_bc - half, lower, upper, 1, 1.0, gen, dtype=torch.float64)])

    def residual(f):
        u = f["u"][..., 0]
        return f["u_t"][..., 0] + u * f["u_x"][..., 0] - nu * f["u_xx"][..., 0]

    def solution():
        from ..reference import burgers_reference

        return burgers_reference(nu=nu)

    return Problem(
        name="burgers", coords=("t", "x"), lower=lower, upper=upper,
        terms=[pde("pde", x_pde, residual, ("u", "u_t", "u_x", "u_xx")),
               initial("ic", x_ic, lambda X: -torch.sin(math.pi * X[:, 1])),
               dirichlet("bc", x_bc, 0.0)],
        depth=depth, width=width, epochs=epochs, solution=solution, seeds=(seed,))


def poisson(seed: Seed = 0, *, n_pde: int = 2_500, n_bc: int = 400, omega: float = 4 * math.pi,
            depth: int = 5, width: int = 50, epochs: int = 30_000, sampler: str = "uniform") -> Problem:
    """2D Poisson: ``u_xx + u_yy = q`` on ``[0, 1]^2`` with ``u = cos(omega x) sin(omega y)`` (``omega = 4 pi``)
    and ``q = -2 omega^2 cos(omega x) sin(omega y)``; Dirichlet data on the four edges (``n_bc / 4`` each).

    Terms: ``pde``, ``bc``.
    """
    ens = ensemble_of(poisson, seed, n_pde=n_pde, n_bc=n_bc, omega=omega, depth=depth, width=width,
                      epochs=epochs, sampler=sampler)
    if ens is not None:
        return ens
    _check_counts(n_pde=n_pde, n_bc=n_bc)
    lower, upper = (0.0, 0.0), (1.0, 1.0)
    seed = int(seed)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.sample(sampler, n_pde, lower, upper, gen, dtype=torch.float64)
    per_edge = [n_bc // 4 + (1 if i < n_bc % 4 else 0) for i in range(4)]
    edges = [(0, 0.0), (0, 1.0), (1, 0.0), (1, 1.0)]
    x_bc = torch.cat([sampling.on_face(sampler, n, lower, upper, c, v, gen, dtype=torch.float64) for n, (c, v) in zip(per_edge, edges)])

    def exact(X: torch.Tensor) -> torch.Tensor:
        return torch.cos(omega * X[..., 0]) * torch.sin(omega * X[..., 1])

    def residual(f):
        q = -2.0 * omega * omega * exact(f.x)
        return f["u_xx"][..., 0] + f["u_yy"][..., 0] - q

    def solution():
        from ..reference import poisson_reference

        return poisson_reference(omega=omega)

    return Problem(
        name="poisson", coords=("x", "y"), lower=lower, upper=upper,
        terms=[pde("pde", x_pde, residual, ("u_xx", "u_yy")), dirichlet("bc", x_bc, exact)],
        depth=depth, width=width, epochs=epochs, solution=solution, seeds=(seed,))


def allen_cahn(seed: Seed = 0, *, n_pde: int = 20_000, n_ic: int = 512, n_bc: int = 200, batch_size: int = 4096,
               depth: int = 5, width: int = 128, epochs: int = 50_000, sampler: str = "uniform") -> Problem:
    """1D Allen-Cahn: ``u_t - 1e-4 u_xx + 5 u^3 - 5 u = 0``, ``u(0, x) = x^2 cos(pi x)``, periodic in x.

    Coordinates ``("t", "x")`` on ``[0, 1] x [-1, 1]``. Periodicity is two soft terms on ``n_bc`` paired
    points at ``x = -1`` and ``x = 1``: ``bc_u`` (values) and ``bc_ux`` (x-derivatives). Mini-batches of
    ``batch_size`` PDE points; the constraints are used whole at every step. Only ``ic`` is adaptive.
    """
    ens = ensemble_of(allen_cahn, seed, n_pde=n_pde, n_ic=n_ic, n_bc=n_bc, batch_size=batch_size, depth=depth,
                      width=width, epochs=epochs, sampler=sampler)
    if ens is not None:
        return ens
    _check_counts(n_pde=n_pde, n_ic=n_ic, n_bc=n_bc, batch_size=batch_size)
    lower, upper = (0.0, -1.0), (1.0, 1.0)
    seed = int(seed)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.sample(sampler, n_pde, lower, upper, gen, dtype=torch.float64)
    x_ic = sampling.on_face(sampler, n_ic, lower, upper, 0, 0.0, gen, dtype=torch.float64)
    t_bc = sampling.sample(sampler, n_bc, (0.0,), (1.0,), gen, dtype=torch.float64)
    x_lo = torch.cat([t_bc, torch.full_like(t_bc, -1.0)], dim=1)
    x_hi = torch.cat([t_bc, torch.full_like(t_bc, 1.0)], dim=1)

    def residual(f):
        u = f["u"][..., 0]
        return f["u_t"][..., 0] - 1e-4 * f["u_xx"][..., 0] + 5.0 * u ** 3 - 5.0 * u

    def solution():
        from ..reference import allen_cahn_reference

        return allen_cahn_reference()

    return Problem(
        name="allen_cahn", coords=("t", "x"), lower=lower, upper=upper,
        terms=[pde("pde", x_pde, residual, ("u", "u_t", "u_xx"), batch_size=batch_size),
               initial("ic", x_ic, lambda X: X[:, 1] ** 2 * torch.cos(math.pi * X[:, 1])),
               periodic("bc_u", x_lo, x_hi, "u"),
               periodic("bc_ux", x_lo, x_hi, "u_x")],
        depth=depth, width=width, epochs=epochs, adaptive=(False, True, False, False), solution=solution,
        seeds=(seed,))


PROBLEMS = {"burgers": burgers, "poisson": poisson, "allen_cahn": allen_cahn}
