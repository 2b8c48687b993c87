"""Allen–Cahn with its initial condition imposed exactly and periodic features (DeepXDE's Allen–Cahn setup,
periodic in x as in the paper's benchmark):

    u_t = d u_xx + 5 (u - u^3)  on  t in [0, 1], x in [-1, 1] periodic,  d = 0.001,
    u(0, x) = x^2 cos(pi x)

The network sees the features (t, cos pi x, sin pi x) (``MLP(input_transform=...)``), so u is exactly
2-periodic in x with no boundary term, and its output goes through ``HardConstraint``:
u = x^2 cos(pi x) + t N(t, x), which holds the initial condition for any network. The PDE is the only loss
term. The reference is the Fourier pseudo-spectral ETDRK4 solution of :mod:`fastpinn.reference.allen_cahn`
(512 modes, dt = 1e-3; no closed form exists), computed in a fraction of a second.

    python examples/allen_cahn_hard.py                  # 1500 epochs: rel. L2 5.8e-1, about 340 s on a CPU
    python examples/allen_cahn_hard.py --epochs 300     # 8.5e-1 (the test's short form)

Measured on the shared 2-core Intel Xeon (float32, seed 0, PINN weights; one term, so every scheme is the same;
the seconds are those of a busy machine). A plain-PyTorch loop of the same setup (same points, features and
constraint, Adam 1e-3 on the mean squared residual, autograd derivatives) gives the same numbers, 5.8e-1 after
1500 epochs and 8.5e-1 after 300; Adam at 5e-3 reaches 5.6e-1; at 1e-3, 5000 epochs reach 5.4e-1 (a plateau: 5.6e-1 at
2000, 87 s on a quieter machine). The constraint alone (u = x^2 cos(pi x) at every t) is at 0.67, so in this
budget the network moves only a little beyond its constraint: the bump at x = 0 grows out of the unstable state
u = 0, the part of this problem PINNs are known to miss without causal weighting or tens of thousands of epochs
(DeepXDE trains 40,000 Adam epochs, then L-BFGS). This example shows the constraint and the features working
through every path, not a converged Allen–Cahn solution.
"""

from __future__ import annotations

import argparse
import math
from functools import partial

import numpy as np
import torch

import fastpinn
from fastpinn import Problem, Trainer, pde
from fastpinn.network import HardConstraint
from fastpinn.reference.allen_cahn import allen_cahn_solve

DIFFUSION = 1e-3


def periodic_features(x: torch.Tensor) -> torch.Tensor:
    """``(2 t - 1, cos pi x, sin pi x)`` ``[..., 3]`` of points ``(t, x)`` ``[..., 2]``."""
    t, s = x[..., 0], x[..., 1]
    return torch.stack([2 * t - 1, torch.cos(math.pi * s), torch.sin(math.pi * s)], -1)


def initial_value(x: torch.Tensor) -> torch.Tensor:
    """``x^2 cos(pi x)`` ``[..., 1]``."""
    s = x[..., 1:2]
    return s ** 2 * torch.cos(math.pi * s)


def elapsed(x: torch.Tensor) -> torch.Tensor:
    """``t`` ``[..., 1]``: zero at the initial time."""
    return x[..., :1]


def reference_grid(nt: int = 51, n_modes: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """``X[nt * n_modes, 2]`` (columns t, x) and ``U[nt * n_modes]`` of the spectral solution."""
    t, x, u = allen_cahn_solve(1.0, n_modes=n_modes, dt=1e-3, t_out=np.linspace(0, 1, nt), progress=False,
                               diffusion=DIFFUSION)
    T, S = np.meshgrid(t, x, indexing="ij")
    return np.stack([T.ravel(), S.ravel()], -1), u.ravel()


def make_problem(seed: int = 0, n_pde: int = 2000) -> Problem:
    """The Allen–Cahn problem (``fastpinn train examples/allen_cahn_hard.py:make_problem``)."""
    gen = torch.Generator().manual_seed(seed)
    x_pde = torch.rand(n_pde, 2, generator=gen) * torch.tensor([1.0, 2.0]) - torch.tensor([0.0, 1.0])

    def residual(f):  # [N, 1] fields -> [N]
        u = f["u"][..., 0]
        return f["u_t"][..., 0] - DIFFUSION * f["u_xx"][..., 0] - 5 * (u - u ** 3)

    return Problem(name="allen_cahn_hard", coords=("t", "x"), lower=(0.0, -1.0), upper=(1.0, 1.0),
                   terms=[pde("pde", x_pde, residual, requests=("u", "u_t", "u_xx"))],
                   depth=4, width=32, epochs=1500, solution=reference_grid, seeds=(seed,),
                   architecture=partial(fastpinn.MLP, input_transform=periodic_features,
                                        output_transform=HardConstraint(initial_value, elapsed)))


def main(epochs: int = 1500) -> float:
    history = Trainer(make_problem(), fastpinn.PINN(), eval_every=max(1, epochs // 4)).train(epochs)
    error = float(history.final_rel_l2()[0])
    print(f"allen-cahn (hard IC, periodic features): rel. L2 = {error:.3e} after {epochs} epochs "
          f"({history.train_seconds:.1f} s)")
    return error


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1500)
    main(parser.parse_args().epochs)
