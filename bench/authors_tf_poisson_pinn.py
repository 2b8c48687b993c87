"""Train Table 2's PINN row with the authors' own published TensorFlow code, on this machine.

Why: our PINN row (1.72e-1 ± 1.3e-2, 10 seeds x 30,000 epochs) is 2.6 combined s.e. below the paper's
2.32e-1 ± 1.9e-2, while all six weighted rows agree. Running the authors' code itself separates "our
implementation differs" from "their published code does not give their published number either".

The authors' repository is not vendored (nothing from other projects is copied in): point ``--code`` at its
``02_Poisson/00_PINN`` folder, e.g. from ``git archive`` of github.com/ShotaDeguchi/DN_PINN. This script imports
their ``pinn.py`` (network, initialiser, loss, Adam step) unchanged and re-states only their ``train.py`` set-up in
the same order of random draws, so each seed gets their points and their initial weights. Two deliberate
differences, neither of which touches the trajectory of the parameters:

* the rel. L2 on their 201 x 201 grid is computed every ``--eval-every`` epochs (250: their save grid) instead of
  every epoch, with their forward pass, in float32 as theirs;
* early stopping is off: the paper's times say its runs went the full 30,000 epochs (see the Table 2 results
  file), and a run stopped early would be a different protocol.

Needs TensorFlow (any 2.x with ``tf.keras.optimizers.Adam``); run it from a separate virtual environment:

    python bench/authors_tf_poisson_pinn.py --code DIR/02_Poisson/00_PINN --seed 0 --epochs 30000 \
        --out runs/authors-pinn/seed0.json

The JSON (written atomically every evaluation, so a killed run leaves its last complete state) holds the rel. L2
per evaluated epoch, the seconds spent and the TensorFlow version. ``bench/authors_tf_summary.py`` reads them.

``--exact-tanh`` computes their ``tf.math.tanh`` in float64, rounded once to float32 (TensorFlow's float32 tanh on
the CPU is an approximation). ``--export FILE.npz`` writes the points, the BC values, the initial parameters and
every epoch's losses, for
``bench/authors_tf_paired.py`` to start fastpinn where their code starts; with ``--float64`` their code runs in
float64 (their module's ``tf.float32`` read as ``tf.float64``; the points are still drawn in float32, as theirs,
then widened), to replay the same trajectory step for step.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _write_atomically(path: str, payload: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(tmp, path)


class _Float64:
    """TensorFlow as the authors' module sees it, with ``float32`` meaning ``float64`` (their dtype is hard-coded)."""

    def __init__(self, tf):
        self._tf = tf
        self.float32 = tf.float64

    def __getattr__(self, name):
        return getattr(self._tf, name)


class _ExactTanh:
    """TensorFlow as the authors' module sees it, with ``tf.math.tanh`` evaluated in float64 and rounded once to
    float32 (TensorFlow's own float32 tanh on the CPU is a fast approximation: up to 6.6 ulp, and its derivative
    1 - tanh² off by up to 49 % in saturation, against torch's 0.57 ulp)."""

    def __init__(self, tf):
        self._tf = tf
        math = type("math", (), {"__getattr__": lambda _, name: getattr(tf.math, name)})()
        math.tanh = lambda u: tf.cast(tf.math.tanh(tf.cast(u, tf.float64)), u.dtype)
        self.math = math

    def __getattr__(self, name):
        return getattr(self._tf, name)


def train_seed(code: str, seed: int, epochs: int, eval_every: int, out: str, threads: int,
               export: str | None = None, exact_tanh: bool = False, float64: bool = False) -> dict:
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    sys.path.insert(0, code)
    import pinn as authors  # the authors' module, unchanged
    if export and float64:
        authors.tf = _Float64(tf)
    elif exact_tanh:
        authors.tf = _ExactTanh(tf)

    # Their train.py, in its order of seeding and random draws (the draws decide the points).
    os.environ["PYTHONHASHSEED"] = str(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)

    nx = ny = 201
    x, y = np.meshgrid(np.linspace(0.0, 1.0, nx), np.linspace(0.0, 1.0, ny))
    omega = 4.0 * np.pi
    x_ref = tf.cast(x.reshape(-1, 1), tf.float32)
    y_ref = tf.cast(y.reshape(-1, 1), tf.float32)
    u_ref = (np.cos(omega * x_ref) * np.sin(omega * y_ref)).reshape(-1, 1)

    lb = tf.constant([0.0, 0.0], dtype=tf.float32)
    ub = tf.constant([1.0, 1.0], dtype=tf.float32)
    mean = tf.reduce_mean([lb, ub], axis=0)
    n_pde, n_bc = 2500, 100

    x_pde = tf.random.uniform((n_pde, 1), lb[0], ub[0], dtype=tf.float32)
    y_pde = tf.random.uniform((n_pde, 1), lb[1], ub[1], dtype=tf.float32)
    g_pde = tf.zeros_like(x_pde)

    def edge(x_lo, x_hi, y_lo, y_hi):
        # One op seed on every edge, as theirs: the op's counter still gives fresh draws per call.
        xe = tf.random.uniform((n_bc, 1), x_lo, x_hi, dtype=tf.float32, seed=seed)
        ye = tf.random.uniform((n_bc, 1), y_lo, y_hi, dtype=tf.float32, seed=seed)
        return xe, ye, tf.cos(omega * xe) * tf.sin(omega * ye)

    north = edge(lb[0], ub[0], ub[1], ub[1])
    south = edge(lb[0], ub[0], lb[1], lb[1])
    east = edge(ub[0], ub[0], lb[1], ub[1])
    west = edge(lb[0], lb[0], lb[1], ub[1])

    if export and float64:  # widen what their train.py drew in float32
        wide = lambda *ts: tuple(tf.cast(t, tf.float64) for t in ts)  # noqa: E731
        x_pde, y_pde, g_pde = wide(x_pde, y_pde, g_pde)
        north, south, east, west = (wide(*e) for e in (north, south, east, west))
        lb, ub, mean, x_ref, y_ref = wide(lb, ub, mean, x_ref, y_ref)
    model = authors.PINN(2, 1, 50, 5, lb, ub, mean, omega,
                         w_init="Glorot", b_init="zeros", act="tanh", lr=1e-3, seed=seed)
    grid = tf.concat([x_ref, y_ref], axis=1)
    ref_norm = np.linalg.norm(u_ref, ord=2)
    if export:
        start = [v.numpy().copy() for v in model._params]  # [W0 [in, out], b0 [1, out], ...]
        per_epoch = []

    record = {"seed": seed, "epochs": epochs, "eval_every": eval_every, "tensorflow": tf.__version__,
              "threads": threads, "evaluated_epochs": [], "rel_l2": [], "losses": [], "seconds": 0.0}
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        loss_glb, loss_pde, loss_bc = model.train(x_pde, y_pde, g_pde, *north, *south, *east, *west)
        if export:
            per_epoch.append((float(loss_pde), float(loss_bc)))
        if epoch % eval_every == 0 or epoch == epochs:
            u = model.forward_pass(grid).numpy()
            record["evaluated_epochs"].append(epoch)
            record["rel_l2"].append(float(np.linalg.norm(u - u_ref, ord=2) / ref_norm))
            record["losses"].append(float(loss_glb))
            record["seconds"] = time.perf_counter() - t0
            _write_atomically(out, record)
    if export:
        np.savez(export, x_pde=np.concatenate([x_pde.numpy(), y_pde.numpy()], 1),
                 x_bc=np.concatenate([np.concatenate([e[0].numpy(), e[1].numpy()], 1)
                                      for e in (north, south, east, west)]),
                 u_bc=np.concatenate([e[2].numpy() for e in (north, south, east, west)])[:, 0],
                 losses=np.asarray(per_epoch), eval_epochs=np.asarray(record["evaluated_epochs"]),
                 rel_l2=np.asarray(record["rel_l2"]),
                 # fastpinn's layout: W as [out, in] (theirs [in, out]), then b, layer by layer
                 final=np.concatenate([(v.numpy().T if i % 2 == 0 else v.numpy()).reshape(-1)
                                       for i, v in enumerate(model._params)]),
                 **{f"start_{i}": v for i, v in enumerate(start)})
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", required=True, help="the authors' 02_Poisson/00_PINN folder")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=30000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="JSON file for this seed")
    parser.add_argument("--export", help="an .npz of the points, BC values, initial parameters and per-epoch losses")
    parser.add_argument("--float64", action="store_true", help="run their code in float64 (needs --export)")
    parser.add_argument("--exact-tanh", action="store_true",
                        help="their code with tanh computed in float64 and rounded to float32 (TensorFlow's float32 "
                             "tanh is an approximation)")
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.code, "pinn.py")):
        parser.error(f"--code {args.code!r}: no pinn.py there; pass the authors' 02_Poisson/00_PINN folder")
    if args.float64 and not args.export:
        parser.error("--float64 needs --export: the float64 run is for the paired replay")
    if args.exact_tanh and args.export:
        parser.error("--exact-tanh is a variant to compare with the authors' runs; leave out --export")
    record = train_seed(args.code, args.seed, args.epochs, args.eval_every, args.out, args.threads, args.export,
                        args.exact_tanh, args.float64)
    record["exact_tanh"] = bool(args.exact_tanh)
    _write_atomically(args.out, record)
    print(f"seed {args.seed}: rel. L2 {record['rel_l2'][-1]:.4e} after {args.epochs} epochs, "
          f"{record['seconds']:.0f} s")


if __name__ == "__main__":
    main()
