"""Your own PDE: the 1-D heat equation u_t = k u_xx on [0, 1] x [0, 1], trained with PINN and DN-PINN.

    u(0, x) = sin(pi x),  u(t, 0) = u(t, 1) = 0,  exact u = exp(-k pi^2 t) sin(pi x).

    python examples/heat_equation.py              # 3000 epochs each, about a minute on a CPU
    python examples/heat_equation.py --epochs 200
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

import fastpinn
from fastpinn import Problem, Trainer, dirichlet, initial, pde, sampling

K = 0.4


def make_problem(seed: int = 0, n_pde: int = 2000, n_ic: int = 100, n_bc: int = 100) -> Problem:
    """The heat equation as a fastpinn Problem (importable: ``fastpinn train examples/heat_equation.py:make_problem``)."""
    lower, upper = (0.0, 0.0), (1.0, 1.0)  # (t, x)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.uniform(n_pde, lower, upper, gen)
    x_ic = sampling.on_face("uniform", n_ic, lower, upper, 0, 0.0, gen)  # t = 0
    x_bc = torch.cat([sampling.on_face("uniform", n_bc // 2, lower, upper, 1, 0.0, gen),
                      sampling.on_face("uniform", n_bc - n_bc // 2, lower, upper, 1, 1.0, gen)])

    def residual(f):  # f["u_t"], f["u_xx"]: [N, 1]
        return f["u_t"][..., 0] - K * f["u_xx"][..., 0]

    def solution():
        t, x = np.meshgrid(np.linspace(0, 1, 51), np.linspace(0, 1, 101), indexing="ij")
        X = np.stack([t.ravel(), x.ravel()], axis=1)
        return X, np.exp(-K * math.pi ** 2 * X[:, 0]) * np.sin(math.pi * X[:, 1])

    return Problem(name="heat", coords=("t", "x"), lower=lower, upper=upper,
                   terms=[pde("pde", x_pde, residual, requests=("u_t", "u_xx")),
                          initial("ic", x_ic, lambda X: torch.sin(math.pi * X[:, 1])),
                          dirichlet("bc", x_bc, 0.0)],
                   depth=4, width=32, epochs=3000, solution=solution, seeds=(seed,))


def main(epochs: int = 3000) -> dict[str, float]:
    errors = {}
    for scheme in (fastpinn.PINN(), fastpinn.DN(beta=0.9)):
        history = Trainer(make_problem(), scheme, eval_every=max(1, epochs // 4)).train(epochs)
        errors[scheme.name] = float(history.final_rel_l2()[0])
        print(f"{scheme.name:>5}: rel. L2 = {errors[scheme.name]:.3e}  ({history.train_seconds:.1f} s)")
    return errors


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3000)
    main(parser.parse_args().epochs)
