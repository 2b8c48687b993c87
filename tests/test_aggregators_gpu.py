"""Aggregators on the device path: the CUDA-graph capture's warm-up leaves an aggregator's state as it found it
(on the CPU, around eager device-gate steps), and -- on a GPU (bench/gpu_session.sh) -- the captured step
equals the eager one and the Gram op dispatches to the compiled Triton kernel.

The no-sync check on CUDA (``torch.cuda.set_sync_debug_mode("error")``) is
``tests/test_aggregators.py::test_device_gate_step_has_no_device_to_host_copy_on_cuda``; the Triton kernel
against exact sums on odd shapes is ``tests/test_aggregators_gram.py`` (compiled on a GPU, interpreted here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastpinn import ops
from fastpinn.problems import allen_cahn
from fastpinn.schemes import scheme_from_name
from fastpinn.trainer import Trainer

EPS64 = torch.finfo(torch.float64).eps
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# M-ConFIG: momenta and counts in the scheme state; PCGrad: a counter-based draw; Nash-MTL: fixed iterations
NAMES = ["pcgrad", "m-config", "nash-mtl", "config", "upgrad"]


def _trainer(name: str, step_mode: str, device: str = "cpu", backend: str = "torch") -> Trainer:
    # Mini-batches with an uneven last batch (50 = 3 x 16 + 2): 4 steps an epoch, two batch sizes, 2 members.
    problem = allen_cahn([0, 1], n_pde=50, n_ic=8, n_bc=4, batch_size=16, depth=2, width=6)
    problem.solution = None
    return Trainer(problem, scheme_from_name(name), dtype=torch.float64, device=device, backend=backend,
                   step_mode=step_mode, eval_every=4)


def _same(a, b, ta: Trainer, tb: Trainer, tol: float) -> None:
    torch.testing.assert_close(ta.net.theta, tb.net.theta, rtol=tol, atol=tol)
    np.testing.assert_allclose(a.losses, b.losses, rtol=tol, atol=tol)
    np.testing.assert_allclose(a.weights, b.weights, rtol=tol, atol=tol)
    assert torch.equal(ta.weighter.n_updates.cpu(), tb.weighter.n_updates.cpu())


@pytest.mark.parametrize("name", ["pcgrad", "m-config"])
def test_capture_warmup_restores_an_aggregators_state(name, monkeypatch):
    """What CapturedStep does around its capture (snapshot, warm-up steps, restore), here around eager
    device-gate steps on the CPU: afterwards training continues bit for bit as if nothing had happened --
    M-ConFIG's momenta and counts and PCGrad's update counter included."""
    from fastpinn.cuda_graph import CapturedStep, StateSnapshot

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    reference, disturbed = _trainer(name, "device"), _trainer(name, "device")
    reference.train(2)
    disturbed.train(2)
    state = disturbed.weighter.scheme_state
    saved = StateSnapshot(disturbed.state_tensors(), disturbed.optimizer)
    before = {k: v.clone() for k, v in state.items()}
    batch = disturbed.epoch_batches(advance=False)[0]
    for _ in range(CapturedStep.WARMUP_STEPS + 1):
        disturbed.step(batch)
    assert not torch.equal(disturbed.net.theta, reference.net.theta)
    if name == "m-config":
        assert not torch.equal(state["momentum"], before["momentum"])  # the warm-up moved the momenta
    saved.restore()
    assert all(torch.equal(state[k], before[k]) for k in state)
    _same(reference.train(3), disturbed.train(3), reference, disturbed, tol=0.0)


@needs_cuda
@pytest.mark.parametrize("name", NAMES)
def test_cuda_graph_step_equals_eager_step(name):
    # float64 on the GPU: the graph replays the device gate's kernels, the eager run decides on the host (M-ConFIG:
    # one backward there, all K and the same row in the graph), so only reassociation may differ.
    eager, graphed = _trainer(name, "eager", "cuda", "auto"), _trainer(name, "cuda_graph", "cuda", "auto")
    h_eager, h_graph = eager.train(6), graphed.train(6)
    assert h_graph.warmup_seconds > 0
    _same(h_eager, h_graph, eager, graphed, tol=1e-10)
    _same(eager.train(3), graphed.train(3), eager, graphed, tol=1e-10)  # the capture's warm-up left no trace


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_gram_of_a_cuda_tensor_is_the_compiled_triton_kernel(dtype):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(2, 5, 300_007, generator=gen, dtype=torch.float64)
    base = base * torch.logspace(-3, 3, 5, dtype=torch.float64).view(1, -1, 1)
    G = base.to(dtype)
    on = G.cuda()[:, :, ::3]  # strided columns too
    ref = G[:, :, ::3]
    assert ops.gram_implementation(on) == "triton"
    out = ops.grad_gram(on)
    assert out.dtype == torch.float64 and out.is_cuda and torch.equal(out, ops.grad_gram(on))  # deterministic
    truth = ops.grad_gram(ref.double(), backend="torch")  # BLAS: within P eps A of the exact sum
    mag = ops.grad_gram(ref.double().abs(), backend="torch")
    P = ref.shape[-1]
    assert ((out.cpu() - truth).abs() <= (P / 16 + 20 + P + 1) * EPS64 * mag).all()
    assert torch.equal(out, out.transpose(1, 2))
