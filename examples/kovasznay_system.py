"""A system of PDEs: steady Navier-Stokes (Kovasznay flow, Re = 20), outputs (u, v, p), with PINN and
DN-PINN (the boundary term adaptive, momentum_x the reference term).

    python examples/kovasznay_system.py --epochs 3000
"""

from __future__ import annotations

import argparse

import fastpinn
from fastpinn.problems import kovasznay


def main(epochs: int = 3000) -> dict[str, float]:
    errors = {}
    for scheme in (fastpinn.PINN(), fastpinn.DN(beta=0.9)):
        problem = kovasznay(0, n_pde=500, n_bc=100, depth=4, width=30)
        history = fastpinn.Trainer(problem, scheme, lr=1e-3, eval_every=max(1, epochs // 3)).train(epochs)
        errors[scheme.name] = float(history.final_rel_l2()[0])
        print(f"{scheme.name:>5}: rel. L2 of (u, v, p) = {errors[scheme.name]:.3e}, "
              f"weights {({n: round(float(w), 3) for n, w in zip(problem.term_names, history.weights[-1, 0])})}")
    return errors


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3000)
    main(parser.parse_args().epochs)
