"""Inverse problems: a PDE coefficient trained from observations, with the network.

``burgers_inverse`` recovers the viscosity of the 1D Burgers equation from noisy samples of its exact
Cole–Hopf solution -- the setting the DN-PINN paper names as the next step for its method.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import sampling
from ..problem import Problem, Seed, data, dirichlet, ensemble_of, initial, pde

__all__ = ["burgers_inverse"]


def burgers_inverse(seed: Seed = 0, *, nu: float = 0.1 / math.pi, nu_init: float = 0.1, n_data: int = 500,
                    noise: float = 0.01, n_pde: int = 2_000, n_ic: int = 100, n_bc: int = 100, depth: int = 5,
                    width: int = 20, epochs: int = 5_000) -> Problem:
    """Burgers ``u_t + u u_x - nu u_xx = 0`` on ``[0, 1] x [-1, 1]`` with ``nu`` unknown.

    Terms: ``pde`` (reads the trainable ``f.coef["nu"]``, started at ``nu_init``), ``data`` (``n_data``
    samples of the exact solution for the true ``nu`` at uniformly drawn points, with Gaussian noise of
    standard deviation ``noise`` times the samples' RMS), ``ic`` and ``bc``. The reference solution is
    the exact one for the true ``nu``; ``problem.extra["nu_true"]`` holds it. A sequence of seeds builds the
    ensemble problem (as ``fastpinn compare`` and ``train --seeds N`` do).
    """
    ens = ensemble_of(burgers_inverse, seed, nu=nu, nu_init=nu_init, n_data=n_data, noise=noise, n_pde=n_pde,
                      n_ic=n_ic, n_bc=n_bc, depth=depth, width=width, epochs=epochs)
    if ens is not None:
        return ens
    for name, v in (("nu", nu), ("nu_init", nu_init)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")
    for name, n in (("n_data", n_data), ("n_pde", n_pde), ("n_ic", n_ic), ("n_bc", n_bc)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    from ..reference.burgers import burgers_reference, burgers_solution

    lower, upper = (0.0, -1.0), (1.0, 1.0)
    gen = torch.Generator().manual_seed(int(seed))
    x_pde = sampling.uniform(n_pde, lower, upper, gen, dtype=torch.float64)
    x_ic = sampling.on_face("uniform", n_ic, lower, upper, 0, 0.0, gen, dtype=torch.float64)
    half = n_bc // 2
    x_bc = torch.cat([sampling.on_face("uniform", half, lower, upper, 1, -1.0, gen, dtype=torch.float64),
                      sampling.on_face("uniform", n_bc - half, lower, upper, 1, 1.0, gen, dtype=torch.float64)])
    x_data = sampling.uniform(n_data, lower, upper, gen, dtype=torch.float64)
    exact = torch.as_tensor(burgers_solution(x_data[:, 0].numpy(), x_data[:, 1].numpy(), nu=nu), dtype=torch.float64)
    rms = float(exact.pow(2).mean().sqrt())
    observed = exact + noise * rms * torch.randn(n_data, generator=gen, dtype=torch.float64)

    def residual(f):
        u = f["u"][..., 0]
        return f["u_t"][..., 0] + u * f["u_x"][..., 0] - f.coef["nu"] * f["u_xx"][..., 0]

    def solution() -> tuple[np.ndarray, np.ndarray]:
        return burgers_reference(nu=nu)

    return Problem(
        name="burgers_inverse", coords=("t", "x"), lower=lower, upper=upper,
        terms=[pde("pde", x_pde, residual, ("u", "u_t", "u_x", "u_xx")),
               data("data", x_data, observed),
               initial("ic", x_ic, lambda X: -torch.sin(math.pi * X[:, 1])),
               dirichlet("bc", x_bc, 0.0)],
        depth=depth, width=width, epochs=epochs, solution=solution, seeds=(int(seed),),
        coefficients={"nu": float(nu_init)}, extra={"nu_true": float(nu)})
