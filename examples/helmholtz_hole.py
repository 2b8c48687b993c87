"""Helmholtz's equation on a square with a circular hole, with a Neumann condition on the circle (DeepXDE's
"Helmholtz equation over a 2D square with a hole", at half its wave number):

    -(u_xx + u_yy) - k^2 u = k^2 sin(k x) sin(k y)  on  D = [-1, 1]^2 minus the disk |x| < 1/2,  k = pi,
    u = 0 on the square's edges,   du/dn = grad(u_exact) . n on the circle,
    exact u = sin(k x) sin(k y)

``n`` is the OUTWARD normal of D, which on the circle points into the hole: ``neumann(..., domain=DOMAIN)``
reads it from the geometry (``Rectangle - Disk``), so the sign is not the user's to get right. Interior points
are a scrambled Sobol' set of D; the network is an MLP with sin activations, declared by the problem.

    python examples/helmholtz_hole.py                 # 1500 epochs: rel. L2 2.5e-2, about 370 s on a CPU
    python examples/helmholtz_hole.py --epochs 300    # 2.7e-1 (the test's short form)

Measured on the shared 2-core Intel Xeon (float32, seed 0, DN-PINN weights as :func:`main` trains; the
seconds are those of a busy machine, several times an idle one's). A plain-PyTorch loop of the same setup
(same points and network, Adam 1e-3 on the unweighted sum of the three mean squared residuals, autograd
derivatives) reaches 2.0e-1 after 1500 epochs and 1.6 after 300, as fastpinn's PINN weights do (2.1e-1, 1.6):
the dynamic weights, which lift the boundary terms, are worth a factor 8 here. An untrained network is at
1.1. DeepXDE's version has twice the wave number (and a wider network, trained longer).
"""

from __future__ import annotations

import argparse
import math
from functools import partial

import numpy as np
import torch

import fastpinn
from fastpinn import Problem, Trainer, dirichlet, neumann, pde
from fastpinn.geometry import Disk, Rectangle

K = math.pi
SQUARE = Rectangle((-1.0, -1.0), (1.0, 1.0))
HOLE = Disk((0.0, 0.0), 0.5)
DOMAIN = SQUARE - HOLE


def exact(x: torch.Tensor) -> torch.Tensor:
    """``sin(k x) sin(k y)`` ``[M]`` of points ``[M, 2]``."""
    return torch.sin(K * x[..., 0]) * torch.sin(K * x[..., 1])


def normal_derivative(x: torch.Tensor) -> torch.Tensor:
    """``grad(u_exact) . n`` ``[M]`` on the circle, ``n = -x / |x|`` (out of D, into the hole)."""
    n = -x / x.norm(dim=-1, keepdim=True)
    ux = K * torch.cos(K * x[..., 0]) * torch.sin(K * x[..., 1])
    uy = K * torch.sin(K * x[..., 0]) * torch.cos(K * x[..., 1])
    return ux * n[..., 0] + uy * n[..., 1]


def make_problem(seed: int = 0, n_pde: int = 1500, n_bc: int = 240, n_circle: int = 120) -> Problem:
    """The Helmholtz problem (``fastpinn train examples/helmholtz_hole.py:make_problem``)."""
    gen = torch.Generator().manual_seed(seed)
    x_pde = DOMAIN.sample_interior(n_pde, "sobol", gen, dtype=torch.float32)
    x_square = SQUARE.sample_boundary(n_bc, "uniform", gen, dtype=torch.float32)
    x_circle = HOLE.sample_boundary(n_circle, "uniform", gen, dtype=torch.float32)

    def residual(f):  # [N, 1] fields -> [N]
        return -(f["u_xx"][..., 0] + f["u_yy"][..., 0]) - K ** 2 * f["u"][..., 0] - K ** 2 * exact(f.x)

    def solution():
        g = np.linspace(-1, 1, 81)
        X = torch.tensor(np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2))
        X = X[DOMAIN.contains(X)]
        return X.numpy(), exact(X).numpy()

    terms = [pde("pde", x_pde, residual, requests=("u", "u_xx", "u_yy")),
             dirichlet("square", x_square, 0.0),
             neumann("circle", x_circle, value=normal_derivative, domain=DOMAIN, coords=("x", "y"))]
    return Problem(name="helmholtz_hole", coords=("x", "y"), lower=(-1.0, -1.0), upper=(1.0, 1.0), terms=terms,
                   depth=4, width=32, epochs=1500, solution=solution, seeds=(seed,),
                   architecture=partial(fastpinn.MLP, activation="sin"))


def main(epochs: int = 1500) -> float:
    history = Trainer(make_problem(), fastpinn.DN(), eval_every=max(1, epochs // 4)).train(epochs)
    error = float(history.final_rel_l2()[0])
    print(f"helmholtz with a hole: rel. L2 = {error:.3e} after {epochs} epochs ({history.train_seconds:.1f} s)")
    return error


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1500)
    main(parser.parse_args().epochs)
