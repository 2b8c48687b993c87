"""Replay the authors' float64 TensorFlow PINN trajectory (Table 2's Poisson) in fastpinn, step for step.

``bench/authors_tf_poisson_pinn.py --float64 --export RUN.npz`` runs the authors' own code in float64 and saves
its points, its initial parameters and every epoch's L_pde and L_bc. This script builds the same problem on those
points with the public API, starts fastpinn's PINN from those parameters in float64 and prints how far the two
trajectories are apart, epoch by epoch. In float64 two implementations of the same algorithm stay together
for many epochs (rounding differences of 1e-16 grow slowly); a difference in the algorithm -- the loss, the
derivatives, the initial state, the optimiser -- shows at once. ``--adam keras`` uses Keras's Adam (its ε added to
the uncorrected √v, as the authors' TensorFlow does) in place of torch's::

    python bench/authors_tf_paired.py RUN.npz --adam keras
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import fastpinn  # noqa: E402
from fastpinn import Problem, dirichlet, pde  # noqa: E402

OMEGA = 4 * math.pi


def exact(X: torch.Tensor) -> torch.Tensor:
    """Table 2's solution cos(ωx) sin(ωy) at points ``[..., 2]``."""
    return torch.cos(OMEGA * X[..., 0]) * torch.sin(OMEGA * X[..., 1])


def residual(f):
    """u_xx + u_yy − q with q = −2ω² cos(ωx) sin(ωy)."""
    return f["u_xx"][..., 0] + f["u_yy"][..., 0] + 2.0 * OMEGA * OMEGA * exact(f.x)


def _flat_start(run: dict) -> np.ndarray:
    """The exported start ``[P]`` in fastpinn's layout: TensorFlow's W is [in, out], fastpinn's theta holds W as
    [out, in], then b, layer by layer."""
    return np.concatenate([(np.asarray(run[f"start_{i}"]).T if i % 2 == 0 else np.asarray(run[f"start_{i}"]))
                           .reshape(-1) for i in range(10)])


class KerasAdam(torch.optim.Optimizer):
    """Adam as Keras computes it: θ -= lr √(1-β₂ᵗ)/(1-β₁ᵗ) · m / (√v + ε), ε = 1e-7 on the uncorrected √v
    (torch adds its 1e-8 to the bias-corrected √v̂)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["t"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                state["t"] += 1
                t, m, v = state["t"], state["m"], state["v"]
                m.add_((p.grad - m) * (1 - b1))
                v.add_((p.grad * p.grad - v) * (1 - b2))
                alpha = group["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                p.sub_(m * alpha / (v.sqrt() + group["eps"]))


def adam_factory(adam: str):
    """The Trainer's ``optimizer``: Keras's Adam (``"keras"``) or ``None``, the Trainer's own torch Adam."""
    return (lambda params: KerasAdam(params, lr=1e-3)) if adam == "keras" else None


def trainer_from_starts(runs: list[dict], dtype: torch.dtype, adam: str, epochs: int, eval_every: int,
                        bc_values: bool) -> fastpinn.Trainer:
    """fastpinn's PINN on the authors' exported points, member s started at ``runs[s]``'s initial parameters (one
    run: a single network; more: an ensemble). ``bc_values``: use the exported BC values (their float32 numbers)
    instead of the exact solution at the points."""
    from fastpinn.reference import poisson_reference

    def stacked(key: str) -> torch.Tensor:
        values = [torch.as_tensor(r[key], dtype=torch.float64) for r in runs]
        return values[0] if len(runs) == 1 else torch.stack(values)  # [N, ...] or [S, N, ...]

    S = len(runs)
    problem = Problem(name="poisson", coords=("x", "y"), lower=(0.0, 0.0), upper=(1.0, 1.0),
                      terms=[pde("pde", stacked("x_pde"), residual, ("u_xx", "u_yy")),
                             dirichlet("bc", stacked("x_bc"), stacked("u_bc") if bc_values else exact)],
                      depth=5, width=50, epochs=epochs, seeds=tuple(range(S)), ensemble=S if S > 1 else None,
                      solution=lambda: poisson_reference(omega=OMEGA))
    trainer = fastpinn.Trainer(problem, fastpinn.PINN(), dtype=dtype, device="cpu", lr=1e-3,
                               optimizer=adam_factory(adam), eval_every=eval_every)
    start = np.stack([_flat_start(r) for r in runs]) if S > 1 else _flat_start(runs[0])
    with torch.no_grad():
        trainer.net.theta.copy_(torch.as_tensor(start, dtype=dtype))
    return trainer


def replay(run: dict, adam: str, epochs: int) -> np.ndarray:
    """fastpinn's ``[E, 2]`` (L_pde, L_bc) per epoch from the authors' points, BC values (theirs: computed in
    float32, then widened) and initial parameters, in float64."""
    trainer = trainer_from_starts([run], torch.float64, adam, epochs, eval_every=epochs, bc_values=True)
    return np.asarray(trainer.train(epochs).losses)[:, 0, :]


def population_from_starts(runs: list[dict], epochs: int, eval_every: int, adam: str) -> tuple[np.ndarray, np.ndarray]:
    """fastpinn's float32 ensemble, member s started at the authors' points and initial parameters of ``runs[s]``
    (``--export`` of a float32 run): ``(eval_epochs [M], rel_l2 [M, S])``."""
    history = trainer_from_starts(runs, torch.float32, adam, epochs, eval_every, bc_values=False).train(epochs)
    return np.asarray(history.eval_epochs), np.asarray(history.rel_l2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="the .npz of authors_tf_poisson_pinn.py --float64 --export")
    parser.add_argument("--adam", choices=("torch", "keras"), default="torch")
    parser.add_argument("--epochs", type=int, help="default: all the exported epochs")
    parser.add_argument("--population", nargs="+", metavar="SEED",
                        help="instead: train fastpinn in float32 from RUN_DIR/seed{SEED}.npz (float32 --export runs; "
                             "RUN is then that folder) and compare its rel. L2 seed by seed with RUN_DIR/seed{SEED}.json "
                             "of the authors' full runs given by --authors")
    parser.add_argument("--authors", help="with --population: the folder of the authors' full runs (seed*.json)")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--out", help="with --population: an .npz for fastpinn's eval_epochs and rel_l2")
    args = parser.parse_args()
    if args.population:
        compare_population(args)
        return
    with np.load(args.run, allow_pickle=False) as data:
        run = {k: data[k] for k in data.files}
    theirs = run["losses"]
    epochs = args.epochs or theirs.shape[0]
    ours = replay(run, args.adam, epochs)
    rel = np.abs(ours - theirs[:epochs]) / np.abs(theirs[:epochs])
    print(f"fastpinn ({args.adam} Adam) against the authors' TensorFlow code, float64, same points and start:")
    print("| epoch | L_pde theirs | L_pde ours | rel. diff | L_bc theirs | L_bc ours | rel. diff |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for e in sorted({1, 2, 10, 100, 250, 500, 1000, 2000, 5000, 10000, epochs} & set(range(1, epochs + 1))):
        i = e - 1
        print(f"| {e:,} | {theirs[i, 0]:.10e} | {ours[i, 0]:.10e} | {rel[i, 0]:.1e} | {theirs[i, 1]:.10e} "
              f"| {ours[i, 1]:.10e} | {rel[i, 1]:.1e} |")
    first = np.flatnonzero((rel > 1e-6).any(1))
    print(f"first epoch where either loss differs by more than 1e-6 (relative): "
          f"{int(first[0]) + 1 if first.size else 'none'}")


def compare_population(args: argparse.Namespace) -> None:
    import json

    from fastpinn.run.records import mean_sem

    seeds = [int(x) for x in args.population]
    runs = []
    for seed in seeds:
        with np.load(os.path.join(args.run, f"seed{seed}.npz"), allow_pickle=False) as data:
            runs.append({k: data[k] for k in data.files})
    epochs = args.epochs or 10000
    eval_epochs, ours = population_from_starts(runs, epochs, args.eval_every, args.adam)
    if args.out:
        np.savez(args.out + ".tmp.npz", eval_epochs=eval_epochs, rel_l2=ours, seeds=np.asarray(seeds))
        os.replace(args.out + ".tmp.npz", args.out)
    theirs = []
    for seed in seeds:
        with open(os.path.join(args.authors, f"seed{seed}.json")) as handle:
            record = json.load(handle)
        theirs.append(dict(zip(record["evaluated_epochs"], record["rel_l2"])))
    print(f"fastpinn (float32, {args.adam} Adam) from the authors' points and initial parameters, seeds {seeds}:")
    print("| epoch | authors' code | fastpinn, same start | log10(fastpinn / authors') per seed, mean ± s.e. |")
    print("|---:|---|---|---|")
    for i, e in enumerate(eval_epochs.tolist()):
        if e % 2500 and e != 500:
            continue
        t = np.asarray([th[e] for th in theirs])
        m, s = mean_sem(np.log10(ours[i] / t))
        (mt, st), (mo, so) = mean_sem(t), mean_sem(ours[i])
        print(f"| {e:,} | {mt:.3e} ± {st:.1e} | {mo:.3e} ± {so:.1e} | {m:+.3f} ± {s:.3f} ({10 ** m:.2f}x) |")


if __name__ == "__main__":
    main()
