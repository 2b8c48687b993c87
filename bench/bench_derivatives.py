"""Derivative engine microbenchmark: jet vs func vs autograd on the paper's Burgers network.

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
from fastpinn.network import MLP

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


@pytest.mark.parametrize("method", ["jet", "func", "autograd"])
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


@pytest.mark.parametrize("method", ["jet", "func", "autograd"])
def test_burgers_ensemble_forward_backward(benchmark, method: str) -> None:
    """Ensemble of 4 members on shared points: batched matmuls over members."""
    benchmark.group = f"burgers-derivatives-ensemble4-{DEVICE}"
    net, x = _burgers_net(ensemble=4), _points()
    loss_fn = lambda n, th, pts: _burgers_loss(n, th, pts, method)  # noqa: E731
    _step(net, x, loss_fn)
    grad = benchmark(_step, net, x, loss_fn)
    assert grad.shape == (4, 3021)
