"""An inverse problem: Burgers' viscosity nu recovered from 300 noisy samples of the exact solution.

    python examples/inverse_burgers.py --epochs 3000   # about 10 s on a CPU
"""

from __future__ import annotations

import argparse

import fastpinn
from fastpinn.problems import burgers_inverse


def main(epochs: int = 3000) -> float:
    problem = burgers_inverse(0, n_pde=1000, n_data=300, noise=0.01, nu_init=0.1, depth=4, width=20)
    trainer = fastpinn.Trainer(problem, fastpinn.DN(beta=0.9), lr=3e-3, coefficient_lr=3e-3,
                               eval_every=max(1, epochs // 3))
    history = trainer.train(epochs)
    nu = float(trainer.coefficient_values()["nu"][0])
    truth = problem.extra["nu_true"]
    print(f"nu: start {problem.coefficients['nu']:.4f}, learned {nu:.5f}, true {truth:.5f} "
          f"({100 * (nu - truth) / truth:+.2f} %); rel. L2 of u = {history.final_rel_l2()[0]:.2e}")
    return nu


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3000)
    main(parser.parse_args().epochs)
