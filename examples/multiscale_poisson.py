"""A multi-scale 1-D Poisson problem, learnt with random Fourier features (Wang, Wang & Perdikaris 2021):

    -u'' = (2 pi)^2 sin(2 pi x) + 0.1 (50 pi)^2 sin(50 pi x)  on  [0, 1],   u(0) = u(1) = 0,
    exact u = sin(2 pi x) + 0.1 sin(50 pi x)

The boundary values are imposed exactly (``HardConstraint``: u = x (1 - x) N(x)), so the PDE is the only loss
term: with two boundary points beside a residual of size (50 pi)^2 / 10 ~ 2500, a boundary term is drowned.

A plain tanh MLP learns the low frequency and misses the 25 periods of the small one (spectral bias): its error
stays near the size of that component. The problem declares a :class:`fastpinn.networks.FourierFeatureMLP`
(``sigma = 10`` per unit of the box scaled to [-1, 1], 64 features), which resolves both scales.

    python examples/multiscale_poisson.py                  # 2000 epochs: rel. L2 {FULL}, {FULL_S} s on a CPU
    python examples/multiscale_poisson.py --epochs 400     # {SHORT} (the test's short form)

{MEASURED}
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
from fastpinn.networks import FourierFeatureMLP

LOW, HIGH, SMALL = 2 * math.pi, 50 * math.pi, 0.1


def exact(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(LOW * x) + SMALL * torch.sin(HIGH * x)


def zero(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def vanishing(x: torch.Tensor) -> torch.Tensor:
    """``x (1 - x)`` ``[..., 1]``: zero at both ends."""
    return x * (1 - x)


def make_problem(seed: int = 0, n_pde: int = 4000, batch_size: int = 250, sigma: float = 10.0) -> Problem:
    """The multi-scale Poisson problem (``fastpinn train examples/multiscale_poisson.py:make_problem``)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n_pde, 1, generator=gen)

    def residual(f):  # [N, 1] fields -> [N]
        s = f.x[..., 0]
        source = LOW ** 2 * torch.sin(LOW * s) + SMALL * HIGH ** 2 * torch.sin(HIGH * s)
        return f["u_xx"][..., 0] + source

    def solution():
        X = torch.linspace(0.0, 1.0, 2001, dtype=torch.float64)[:, None]
        return X.numpy(), exact(X[:, 0]).numpy()

    return Problem(name="multiscale_poisson", coords=("x",), lower=(0.0,), upper=(1.0,),
                   terms=[pde("pde", x, residual, requests=("u_xx",), batch_size=batch_size)],
                   depth=3, width=64, epochs=2000, solution=solution, seeds=(seed,),
                   architecture=partial(FourierFeatureMLP, sigma=sigma, n_features=64,
                                        output_transform=HardConstraint(zero, vanishing)))


def main(epochs: int = 2000) -> float:
    history = Trainer(make_problem(), fastpinn.PINN(), eval_every=max(1, epochs // 4)).train(epochs)
    error = float(history.final_rel_l2()[0])
    print(f"multi-scale poisson (Fourier features): rel. L2 = {error:.3e} after {epochs} epochs "
          f"({history.train_seconds:.1f} s)")
    return error


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000)
    main(parser.parse_args().epochs)
