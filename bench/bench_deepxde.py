"""fastpinn vs DeepXDE 1.15 (PyTorch backend) on the paper's Burgers setup: time per Adam iteration.

Both sides: network 2-[20]x8-1, tanh, Glorot normal, zero biases; N_pde 10,000 uniform random points,
100 initial and 200 boundary points; full batch; Adam lr 1e-3; float32; inputs scaled to [-1, 1]
(fastpinn's network does it; DeepXDE gets the same map as a feature transform).

* DeepXDE: ``dde.data.TimePDE(..., num_domain=10000, num_boundary=200, num_initial=100,
  train_distribution="pseudo")``, ``dde.nn.FNN``, ``model.compile("adam", lr=1e-3)``. One iteration is what
  ``Model._train_sgd`` does per step minus callbacks and the periodic test evaluation:
  ``train_state.set_data_train(*data.train_next_batch())`` + ``model._train_step(...)``
  (``dde.grad.jacobian``/``hessian`` derivatives, one backward of the summed losses, Adam).
  Note that DeepXDE evaluates the network and its derivatives on the PDE *and* the IC/BC points in one
  batch (its usual design), so its forward pass covers 10,600 points.
* fastpinn: ``Trainer(paper.burgers(), PINN())`` and ``DN(tau=10)`` (and ``compile=True`` PINN with
  ``--compile``), one epoch = one Adam iteration.

DeepXDE is optional (not a fastpinn dependency): everything skips with a message when it cannot be
imported. Install it without touching torch, e.g. ``pip install deepxde==1.15.0`` after checking
``pip install --dry-run deepxde==1.15.0`` does not list torch.

    OMP_NUM_THREADS=1 pytest bench/bench_deepxde.py --benchmark-group-by=group --benchmark-columns=median,rounds
    OMP_NUM_THREADS=1 python bench/bench_deepxde.py [--rounds 7] [--block 10] [--json out.json]

The script form interleaves the three runners (shuffled order per round) and prints median ms/iteration
and the paired ratio DeepXDE / fastpinn; ``bench/run_all.py`` runs it in a subprocess so that DeepXDE's
import-time settings cannot leak into the other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Optional

os.environ.setdefault("DDE_BACKEND", "pytorch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_training as bt  # noqa: E402
from fastpinn.problems import paper  # noqa: E402

NU = 0.01 / math.pi
N_PDE, N_IC, N_BC = 10_000, 100, 200
SKIP_MESSAGE = ("DeepXDE is not importable with the PyTorch backend (optional; `pip install deepxde==1.15.0` "
                "without changing torch, and DDE_BACKEND=pytorch): skipping the DeepXDE comparison")


def import_deepxde():
    """``deepxde`` module, or ``None`` (with the reason on stderr) when it is missing or not on PyTorch."""
    try:
        import deepxde as dde
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        print(f"{SKIP_MESSAGE} ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None
    if dde.backend.backend_name != "pytorch":
        print(f"{SKIP_MESSAGE} (backend is {dde.backend.backend_name!r})", file=sys.stderr)
        return None
    return dde


class DeepXDERunner:
    """DeepXDE's Burgers example at the paper's settings; :meth:`block` returns seconds per iteration."""

    def __init__(self, dde, seed: int = 0) -> None:
        dde.config.set_random_seed(seed)
        dde.config.set_default_float("float32")
        geomtime = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1), dde.geometry.TimeDomain(0, 1))

        def pde(x, y):  # columns of x: (x, t)
            dy_x = dde.grad.jacobian(y, x, i=0, j=0)
            dy_t = dde.grad.jacobian(y, x, i=0, j=1)
            dy_xx = dde.grad.hessian(y, x, i=0, j=0)
            return dy_t + y * dy_x - NU * dy_xx

        bc = dde.icbc.DirichletBC(geomtime, lambda x: 0, lambda _, on_boundary: on_boundary)
        ic = dde.icbc.IC(geomtime, lambda x: -np.sin(np.pi * x[:, 0:1]), lambda _, on_initial: on_initial)
        self.data = dde.data.TimePDE(geomtime, pde, [bc, ic], num_domain=N_PDE, num_boundary=N_BC,
                                     num_initial=N_IC, train_distribution="pseudo")
        net = dde.nn.FNN([2] + [20] * 8 + [1], "tanh", "Glorot normal")
        net.apply_feature_transform(lambda x: torch.cat([x[:, 0:1], 2.0 * x[:, 1:2] - 1.0], dim=1))
        self.model = dde.Model(self.data, net)
        self.model.compile("adam", lr=1e-3)
        self.model.train(iterations=1, display_every=1, verbose=0)  # sets up train_state; runs one step
        self.n_train_points = int(self.model.train_state.X_train.shape[0])

    def block(self, n: int = bt.BLOCK) -> float:
        model, state = self.model, self.model.train_state
        tick = time.perf_counter()
        for _ in range(n):  # Model._train_sgd's loop body without callbacks / display
            state.set_data_train(*self.data.train_next_batch(model.batch_size))
            model._train_step(state.X_train, state.y_train, state.train_aux_vars)
        bt.sync()
        return (time.perf_counter() - tick) / n


def fastpinn_runners(compiled: bool = False) -> dict[str, bt.FastRunner]:
    problem = bt.dataclasses.replace(paper.burgers(0, n_pde=N_PDE, n_ic=N_IC, n_bc=N_BC), solution=None)
    runners = {"fastpinn PINN": bt.FastRunner(problem, bt.SCHEMES["PINN"]),
               "fastpinn DN τ=10": bt.FastRunner(problem, bt.SCHEMES["DN τ=10"])}
    if compiled:
        runners["fastpinn compiled PINN"] = bt.FastRunner(problem, bt.SCHEMES["PINN"], compile=True)
    return runners


def step_floor(reps: int = 30) -> dict:
    """A lower bound on one fastpinn Burgers step on this device, from two measured rates.

    ``FlopCounterMode`` counts the matrix-multiply FLOPs of one PINN step (forward jets + backward); they
    are priced at the rate this device reaches on the step's dominant shape (10,000-point activations
    times a 20 x 20 weight). The forward tanh of every hidden layer (8 x 20 per point) is priced at the
    measured ``torch.tanh`` throughput. Elementwise jet arithmetic, Adam and framework overhead come on
    top, so no implementation of this formulation can run a step faster than ``floor_ms``."""
    from torch.utils.flop_counter import FlopCounterMode

    problem = bt.dataclasses.replace(paper.burgers(0, n_pde=N_PDE, n_ic=N_IC, n_bc=N_BC), solution=None)
    trainer = bt.Trainer(problem, bt.SCHEMES["PINN"], eval_every=10**9, device=bt.DEVICE)
    trainer.step(None)
    with FlopCounterMode(display=False) as counter:
        trainer.step(None)
    flops = counter.get_total_flops()

    def rate(fn, work: float) -> float:
        fn()
        bt.sync()
        best = math.inf
        for _ in range(reps):
            tick = time.perf_counter()
            fn()
            bt.sync()
            best = min(best, time.perf_counter() - tick)
        return work / best

    a = torch.randn(4 * N_PDE, 20, device=bt.DEVICE)
    w = torch.randn(20, 20, device=bt.DEVICE)
    mm_flops_per_s = rate(lambda: a @ w, 2.0 * a.shape[0] * 20 * 20)
    h = torch.randn(N_PDE, 20, device=bt.DEVICE)
    tanh_per_s = rate(lambda: torch.tanh(h), float(h.numel()))
    n_tanh = (N_PDE + N_IC + N_BC) * 20 * problem.depth
    mm_ms, tanh_ms = 1e3 * flops / mm_flops_per_s, 1e3 * n_tanh / tanh_per_s
    return {"matmul_mflop": flops / 1e6, "matmul_gflops": mm_flops_per_s / 1e9, "matmul_ms": mm_ms,
            "tanh_count": n_tanh, "tanh_gelem_per_s": tanh_per_s / 1e9, "tanh_ms": tanh_ms,
            "floor_ms": mm_ms + tanh_ms}


def compare(rounds: int = 7, block: int = bt.BLOCK, compiled: bool = False, log=None) -> Optional[dict]:
    """Interleaved ms/iteration of DeepXDE and fastpinn (PINN, DN tau=10, optionally compiled PINN);
    ``None`` without DeepXDE."""
    dde = import_deepxde()
    if dde is None:
        return None
    runners = {"DeepXDE (PINN)": DeepXDERunner(dde), **fastpinn_runners(compiled)}
    samples = bt.interleave(runners, rounds, block, log=log)
    return {
        "floor": step_floor(),
        "deepxde_version": dde.__version__,
        "deepxde_train_points": runners["DeepXDE (PINN)"].n_train_points,
        "warmup_s": {k: r.warmup_seconds for k, r in runners.items() if k.startswith("fastpinn compiled")},
        "rounds": rounds, "block": block,
        "samples_s": samples,
        "median_ms": {k: 1e3 * bt.median(v) for k, v in samples.items()},
        "min_ms": {k: 1e3 * min(v) for k, v in samples.items()},
        "ratio_deepxde_over": {k: bt.paired_ratio(samples, "DeepXDE (PINN)", k)
                               for k in samples if k.startswith("fastpinn")},
    }


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="fastpinn vs DeepXDE on Burgers (ms per Adam iteration)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block", type=int, default=bt.BLOCK, help="iterations per timed block")
    ap.add_argument("--compile", action="store_true", help="add fastpinn compile=True (minutes of warm-up)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU (default 1)")
    ap.add_argument("--json", default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    if bt.DEVICE == "cpu":
        torch.set_num_threads(args.threads)
    result = compare(args.rounds, args.block, args.compile, log=lambda s: print(s, file=sys.stderr, flush=True))
    if result is None:
        payload = {"skipped": SKIP_MESSAGE}
    else:
        payload = result
        for k, v in result["median_ms"].items():
            print(f"{k:20s} {v:9.2f} ms/iteration (median), {result['min_ms'][k]:9.2f} (min)")
        for k, v in result["ratio_deepxde_over"].items():
            print(f"DeepXDE / {k}: {v:.2f}x")
        f = result["floor"]
        print(f"floor of a fastpinn step: {f['matmul_mflop']:.0f} MFLOP of matmuls at {f['matmul_gflops']:.1f} GFLOP/s "
              f"= {f['matmul_ms']:.1f} ms + {f['tanh_count'] / 1e6:.1f} M tanh at {f['tanh_gelem_per_s']:.2f} G/s = "
              f"{f['tanh_ms']:.1f} ms -> {f['floor_ms']:.1f} ms; DeepXDE / floor = "
              f"{result['median_ms']['DeepXDE (PINN)'] / f['floor_ms']:.2f}x")
    if args.json:
        from fastpinn import _io

        _io.atomic_write_json(args.json, payload)
    return 0


# ------------------------------------------------------------------------------------- pytest
try:
    import pytest_benchmark  # noqa: F401
except ImportError:
    pytestmark = pytest.mark.skip(reason="pytest-benchmark is not installed (pip install pytest-benchmark)")

_DDE = None


def _dde():
    global _DDE
    if _DDE is None:
        _DDE = import_deepxde() or False
    if _DDE is False:
        pytest.skip(SKIP_MESSAGE)
    return _DDE


@pytest.mark.parametrize("side", ["deepxde", "fastpinn PINN", "fastpinn DN τ=10"], ids=bt.ascii_id)
def test_burgers_iteration(benchmark, side: str) -> None:
    """One timed call = 10 Adam iterations (ms/iteration = time / 10)."""
    benchmark.group = f"burgers-deepxde-vs-fastpinn-{bt.DEVICE} (10 iterations)"
    runner = DeepXDERunner(_dde()) if side == "deepxde" else fastpinn_runners()[side]
    runner.block()
    benchmark.pedantic(runner.block, rounds=3, iterations=1)


if __name__ == "__main__":
    sys.exit(main())
