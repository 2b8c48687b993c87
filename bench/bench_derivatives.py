"""Derivative engine microbenchmark: jet vs fused vs func vs autograd, side by side.

``python bench/bench_derivatives.py`` (what ``run_all.py`` runs): for each paper problem's PDE term (paper
network and points, float32) one forward + backward to theta per method, interleaved in shuffled rounds;
ratios over the forward jets are paired per round. It also reports what
``fastpinn.derivatives.fastest_method`` (the trainer's ``derivative_method="tune"``) picks on this device.

The pytest-benchmark tests below time the paper's Burgers network alone:

MLP in_dim 2 (t, x), out 1, depth 9, width 20 (3,021 parameters), 10,000 points, float32; requests
u, u_t, u_x, u_xx; one timed call = the Burgers residual loss forward + backward to theta.

    pytest bench/bench_derivatives.py --benchmark-group-by=group --benchmark-columns=min,median,mean,stddev,rounds

On a shared or busy CPU box, run with OMP_NUM_THREADS=1: with 2 OpenMP threads competing for cores,
the timings were 3-5x slower and erratic. Set FASTPINN_BENCH_COMPILE=0 to skip the torch.compile
variant: its first call compiles, which took ~3 minutes on a loaded 2-core box (then it is cached).
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from fastpinn.derivatives import derivatives
from fastpinn.malloc import retain_freed_memory
from fastpinn.network import MLP

# Freed activation memory is reused, not page-faulted in again each step: what the fastpinn CLI does too.
ALLOCATOR_TUNED = retain_freed_memory()

if __name__ != "__main__":
    pytest.importorskip("pytest_benchmark")

N_POINTS = 10_000
NU = 0.01 / math.pi
REQUESTS = ("u", "u_t", "u_x", "u_xx")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _burgers_net(ensemble: int | None = None) -> MLP:
    return MLP(2, 1, depth=9, width=20, lower=[0.0, -1.0], upper=[1.0, 1.0], ensemble=ensemble, seed=0, device=DEVICE)


def _points() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    unit = torch.rand(N_POINTS, 2, generator=gen)
    return (unit * torch.tensor([1.0, 2.0]) + torch.tensor([0.0, -1.0])).to(DEVICE)


def _burgers_loss(net: MLP, theta: torch.Tensor, x: torch.Tensor, method: str) -> torch.Tensor:
    f = derivatives(net, x, coords=("t", "x"), requests=REQUESTS, method=method, theta=theta)
    residual = f["u_t"] + f["u"] * f["u_x"] - NU * f["u_xx"]
    return residual.square().mean()


def _synchronize() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _step(net: MLP, x: torch.Tensor, loss_fn) -> torch.Tensor:
    (grad,) = torch.autograd.grad(loss_fn(net, net.theta, x), net.theta)
    _synchronize()
    return grad


@pytest.mark.parametrize("method", ["jet", "fused", "func", "autograd"])
def test_burgers_forward_backward(benchmark, method: str) -> None:
    benchmark.group = f"burgers-derivatives-{DEVICE}"
    net, x = _burgers_net(), _points()
    assert net.n_params == 3021
    loss_fn = lambda n, th, pts: _burgers_loss(n, th, pts, method)  # noqa: E731
    _step(net, x, loss_fn)  # warm-up
    grad = benchmark(_step, net, x, loss_fn)
    assert torch.isfinite(grad).all()


@pytest.mark.skipif(os.environ.get("FASTPINN_BENCH_COMPILE", "1") == "0", reason="FASTPINN_BENCH_COMPILE=0")
def test_burgers_forward_backward_jet_compiled(benchmark) -> None:
    benchmark.group = f"burgers-derivatives-{DEVICE}"
    net, x = _burgers_net(), _points()
    compiled = torch.compile(lambda n, th, pts: _burgers_loss(n, th, pts, "jet"))
    for _ in range(2):  # compile forward and backward outside the timing
        _step(net, x, compiled)
    reference = _step(net, x, lambda n, th, pts: _burgers_loss(n, th, pts, "jet"))
    grad = benchmark(_step, net, x, compiled)
    torch.testing.assert_close(grad, reference, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["jet", "fused", "func", "autograd"])
def test_burgers_ensemble_forward_backward(benchmark, method: str) -> None:
    """Ensemble of 4 members on shared points: batched matmuls over members."""
    benchmark.group = f"burgers-derivatives-ensemble4-{DEVICE}"
    net, x = _burgers_net(ensemble=4), _points()
    loss_fn = lambda n, th, pts: _burgers_loss(n, th, pts, method)  # noqa: E731
    _step(net, x, loss_fn)
    grad = benchmark(_step, net, x, loss_fn)
    assert grad.shape == (4, 3021)


# ------------------------------------------------------------------------- interleaved comparison
def compare(problem_name: str, size: str, rounds: int, seed: int = 0) -> dict:
    """Seconds per forward + backward of the problem's PDE term for each method, ``rounds`` shuffled rounds."""
    import dataclasses
    import random
    import time

    from fastpinn.derivatives import fastest_method
    from fastpinn import problems

    sizes = {"paper": {}, "cpu": {"allen_cahn": {"n_pde": 4096}},
             "quick": {"burgers": {"n_pde": 2000}, "poisson": {"n_pde": 1000, "n_bc": 200},
                       "allen_cahn": {"n_pde": 1024, "batch_size": 1024}}}[size]
    problem = dataclasses.replace(problems.get(problem_name, 0, **sizes.get(problem_name, {})), solution=None)
    problem = problem.to(DEVICE, torch.float32)
    net = problem.network(dtype=torch.float32, device=DEVICE)
    term = problem.terms[0]
    index = None if term.n_batches == 1 else torch.arange(term.batch_size, device=DEVICE)

    def loss(method: str) -> torch.Tensor:
        return term.loss(net, problem.coords, index, method=method, theta=net.theta)

    def once(method: str) -> float:
        _synchronize()
        tick = time.perf_counter()
        (g,) = torch.autograd.grad(loss(method), net.theta, allow_unused=True, materialize_grads=True)
        _synchronize()
        return time.perf_counter() - tick

    methods = ["jet", "fused", "func", "autograd"]
    for m in methods:
        once(m)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(rounds):
        order = methods[:]
        rng.shuffle(order)
        for m in order:
            samples[m].append(once(m))
    choice = fastest_method(loss, net.theta, repeats=3)
    return {"problem": problem_name, "requests": list(term.requests), "n_points": index.numel() if index is not None
            else term.n_points, "n_params": net.n_params, "depth": problem.depth, "width": problem.width,
            "samples_s": samples, "tuned": choice.method, "tuned_seconds": choice.seconds,
            "tuned_rejected": choice.rejected}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import statistics

    ap = argparse.ArgumentParser(description="Interleaved timings of the derivative methods")
    ap.add_argument("--size", choices=("paper", "cpu", "quick"), default="cpu" if DEVICE == "cpu" else "paper")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--problems", nargs="*", default=["burgers", "poisson", "allen_cahn"])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU (default 1)")
    ap.add_argument("--json", default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    if DEVICE == "cpu":
        torch.set_num_threads(args.threads)
    results = {}
    for name in args.problems:
        res = compare(name, args.size, args.rounds)
        results[name] = res
        S = res["samples_s"]
        print(f"{name} (PDE term, {res['n_points']:,} points, requests {res['requests']}):")
        for m, xs in S.items():
            ratio = statistics.median(a / b for a, b in zip(xs, S["jet"]))
            print(f"  {m:9s} {1e3 * statistics.median(xs):9.2f} ms   x{ratio:.2f} over jet (paired median)")
        print(f"  fastest_method picks {res['tuned']!r}", flush=True)
    if args.json:
        from fastpinn import _io

        _io.atomic_write_json(args.json, {"device": DEVICE, "size": args.size, "rounds": args.rounds,
                                          "problems": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
