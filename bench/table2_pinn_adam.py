"""Table 2's PINN row (2-D Poisson) as a fastpinn ensemble with Keras's Adam or torch's, and either initialiser.

The float64 replay of the authors' code (``bench/authors_tf_paired.py``) tracks their trajectory 20x closer with
Keras's Adam than with torch's: its ε = 1e-7 sits on the uncorrected √v, so early steps of parameters with small
gradients are shorter. This trains the population to see whether that, or the authors' initialiser, moves the row's mean::

    python bench/table2_pinn_adam.py --adam keras --init truncated_normal --seeds 10 --epochs 30000 \
        --out runs/pinn-keras.npz
"""
from __future__ import annotations

import argparse
import functools
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastpinn  # noqa: E402
from authors_tf_paired import adam_factory  # noqa: E402
from fastpinn.problems import poisson  # noqa: E402
from fastpinn.run.records import mean_sem  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adam", choices=("torch", "keras"), default="keras")
    parser.add_argument("--init", choices=fastpinn.network.INITS, default="glorot_normal")
    parser.add_argument("--derivative-method", default="fused",
                        help="fastpinn's derivative method (fused: the Table 2 runs'; autograd: nested autodiff as "
                             "the authors' TensorFlow code computes u_xx)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--epochs", type=int, default=10000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--save-every", type=int, default=2500, help="epochs between saves of --out")
    parser.add_argument("--out", required=True, help=".npz of eval_epochs [M] and rel_l2 [M, S]")
    args = parser.parse_args()
    problem = poisson(list(range(args.first_seed, args.first_seed + args.seeds)), epochs=args.epochs)
    problem.architecture = functools.partial(fastpinn.MLP, init=args.init)
    trainer = fastpinn.Trainer(problem, fastpinn.PINN(), lr=1e-3, optimizer=adam_factory(args.adam),
                               eval_every=args.eval_every,
                               device="cpu", dtype=torch.float32, derivative_method=args.derivative_method)
    epochs, rel = [], []
    while trainer.epoch < args.epochs:  # in chunks, each saved (atomically): a long run leaves what it reached
        history = trainer.train(min(args.save_every, args.epochs - trainer.epoch))
        epochs += list(np.asarray(history.eval_epochs))
        rel += list(np.asarray(history.rel_l2))
        tmp = args.out + ".tmp.npz"
        np.savez(tmp, eval_epochs=np.asarray(epochs), rel_l2=np.asarray(rel))
        os.replace(tmp, args.out)
    print(f"PINN, {args.adam} Adam, init {args.init}, {args.derivative_method} derivatives, {args.seeds} seeds:")
    for e, row in zip(epochs, rel):
        if e % 2500 == 0:
            m, s = mean_sem(row)
            print(f"  epoch {int(e):>6,}: rel. L2 {m:.3e} ± {s:.1e}")


if __name__ == "__main__":
    main()
