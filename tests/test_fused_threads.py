"""The fused ops (``fastpinn::mlp_jet_*``, ``fastpinn::mlp_taylor_*``) give the 1-thread result at 2 and 3 threads.

The ops cut a call's (member, tile) items into fixed blocks that the threads claim as they go
(csrc/mlp_dispatch.h). What may differ between thread counts, and by how much:

* the fields and the gradient wrt x: each point's values come from its own tile, computed by the same code
  whichever thread runs it, so they must be bitwise equal;
* the gradient wrt theta: a sum over the points' contributions, added up in another association (per block,
  then the blocks in block order). Reordering a float sum of n terms changes it by at most ~n eps sum_p |g_p|
  (recursive summation's bound), so each entry must agree within ``n eps sum_p |g_p|`` where ``g_p`` is point
  p's own contribution, measured by running every point as its own ensemble member. An item the split drops or
  counts twice moves the sum by a whole ``|g_p|`` -- at least 32/n of ``sum_p |g_p|`` for a tile -- far outside;
* at a fixed thread count the blocks, and so every result, are the same from call to call (bitwise), however the
  threads happened to claim the blocks.
"""

from __future__ import annotations

import pytest
import torch

from fastpinn.ops import _ext
from fastpinn.ops.mlp_jet import JetPlan

pytestmark = pytest.mark.skipif(not _ext.available(), reason="fastpinn._C is not built")

# (sizes, derivative indices): a narrow net (the backward's SIMD weight-gradient accumulators) and a wide one
# (the row-padded weight-gradient path), with Allen-Cahn's channels.
NETS = {"narrow-5x20": ([2, 20, 20, 20, 20, 1], [(), (0,), (1, 1)]),
        "wide-2x150": ([2, 150, 150, 1], [(), (0,), (1,), (1, 1)])}
POINTS = (1, 33, 203, 1001)  # one point, a tile and one, odd counts that leave a partial last tile


def _inputs(sizes, n, dtype, members=1, per_member=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    n_params = sum(sizes[k + 1] * (sizes[k] + 1) for k in range(len(sizes) - 1))
    theta = (torch.randn(members, n_params, generator=g, dtype=torch.float64) * 0.3).to(dtype)
    d = sizes[0]
    x = (torch.rand(*((members, n, d) if per_member else (n, d)), generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    scale = torch.full((d,), 1.5, dtype=dtype)
    shift = torch.full((d,), 0.1, dtype=dtype)
    return theta, x, scale, shift


def _at_threads(threads: int, fn):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def _weights(shape, dtype):
    """Fixed random cotangents for the fields: the gradients are those of sum(fields * w)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)


def _jet_args(sizes, requests):
    plan = JetPlan(requests)
    return (sizes, plan.dirs, [p for pair in plan.pairs for p in pair], plan.first_out)


def _jet_grads(theta, x, scale, shift, w, sizes, requests):
    args = _jet_args(sizes, requests)
    _, tape = torch.ops.fastpinn.mlp_jet_forward(theta, x, scale, shift, *args, False)
    return torch.ops.fastpinn.mlp_jet_backward(w, theta, x, scale, shift, tape, *args, True)


def _jet(theta, x, scale, shift, sizes, requests):
    """(fields, grad theta, grad x, w) of sum(fields * w)."""
    fields, _ = torch.ops.fastpinn.mlp_jet_forward(theta, x, scale, shift, *_jet_args(sizes, requests), False)
    w = _weights(fields.shape, theta.dtype)
    return (fields, *_jet_grads(theta, x, scale, shift, w, sizes, requests), w)


def _point_abs_sum(grads, theta, x, scale, shift, w, chunk: int = 64):
    """sum_p |g_p| [S, P] in float64, g_p the theta gradient of point p alone: `grads(theta, x, scale, shift, w)`
    with every point its own ensemble member (in chunks of points, to bound the memory)."""
    members, n, d = theta.shape[0], x.shape[-2], x.shape[-1]
    xs = x if x.dim() == 3 else x.expand(members, n, d)
    out = torch.zeros(theta.shape, dtype=torch.float64)
    for s in range(members):
        for p0 in range(0, n, chunk):
            m = min(chunk, n - p0)
            th = theta[s].double().expand(m, -1).contiguous()
            xp = xs[s, p0:p0 + m].double().reshape(m, 1, d).contiguous()
            wp = w[s, :, p0:p0 + m].double().permute(1, 0, 2).unsqueeze(2).contiguous()  # [m members, C, 1, out]
            g, _ = grads(th, xp, scale.double(), shift.double(), wp)
            out[s] += g.abs().sum(0)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("net", sorted(NETS))
def test_jet_op_at_2_and_3_threads_equals_1_thread(net: str, dtype: torch.dtype) -> None:
    sizes, requests = NETS[net]
    eps = torch.finfo(dtype).eps
    for n in POINTS:
        theta, x, scale, shift = _inputs(sizes, n, dtype)
        f1, gt1, gx1, w = _at_threads(1, lambda: _jet(theta, x, scale, shift, sizes, requests))
        grads = lambda *a: _jet_grads(*a, sizes, requests)  # noqa: E731
        bound = n * eps * _point_abs_sum(grads, theta, x, scale, shift, w).to(dtype)
        for threads in (2, 3):
            f, gt, gx, _ = _at_threads(threads, lambda: _jet(theta, x, scale, shift, sizes, requests))
            assert torch.equal(f, f1) and torch.equal(gx, gx1), (net, n, threads)
            assert bool(((gt - gt1).abs() <= bound).all()), (net, n, threads, float((gt - gt1).abs().max()))


@pytest.mark.parametrize("per_member", [False, True], ids=["shared-x", "per-member-x"])
def test_jet_op_ensemble_at_2_threads_equals_1_thread(per_member: bool) -> None:
    sizes, requests = NETS["narrow-5x20"]
    theta, x, scale, shift = _inputs(sizes, 203, torch.float32, members=3, per_member=per_member)
    f1, gt1, gx1, w = _at_threads(1, lambda: _jet(theta, x, scale, shift, sizes, requests))
    f2, gt2, gx2, _ = _at_threads(2, lambda: _jet(theta, x, scale, shift, sizes, requests))
    grads = lambda *a: _jet_grads(*a, sizes, requests)  # noqa: E731
    bound = 203 * torch.finfo(torch.float32).eps * _point_abs_sum(grads, theta, x, scale, shift, w).float()
    assert torch.equal(f2, f1) and torch.equal(gx2, gx1)
    assert bool(((gt2 - gt1).abs() <= bound).all()), float((gt2 - gt1).abs().max())


def test_jet_op_at_2_threads_is_the_same_from_call_to_call() -> None:
    sizes, requests = NETS["wide-2x150"]
    theta, x, scale, shift = _inputs(sizes, 1001, torch.float32)
    runs = [_at_threads(2, lambda: _jet(theta, x, scale, shift, sizes, requests)) for _ in range(4)]
    for f, gt, gx, _ in runs[1:]:
        assert torch.equal(f, runs[0][0]) and torch.equal(gt, runs[0][1]) and torch.equal(gx, runs[0][2])


def test_jet_op_empty_points_at_2_threads() -> None:
    sizes, requests = NETS["narrow-5x20"]
    theta, x, scale, shift = _inputs(sizes, 0, torch.float64)
    f, gt, gx, _ = _at_threads(2, lambda: _jet(theta, x, scale, shift, sizes, requests))
    assert f.shape[2] == 0 and torch.equal(gt, torch.zeros_like(gt)) and gx.shape == x.shape


def _taylor_grads(theta, x, scale, shift, w, sizes, order):
    return torch.ops.fastpinn.mlp_taylor_backward(w, theta, x, scale, shift, sizes, [0], order, "tanh", True)


def _taylor(theta, x, scale, shift, sizes, order):
    fields = torch.ops.fastpinn.mlp_taylor_forward(theta, x, scale, shift, sizes, [0], order, "tanh")
    w = _weights(fields.shape, theta.dtype)
    return (fields, *_taylor_grads(theta, x, scale, shift, w, sizes, order), w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_taylor_op_at_2_threads_equals_1_thread(dtype: torch.dtype) -> None:
    if not hasattr(torch.ops.fastpinn, "mlp_taylor_forward"):
        pytest.skip("fastpinn._C lacks mlp_taylor")
    sizes, order, n = [1, 20, 20, 20, 1], 4, 203
    theta, x, scale, shift = _inputs(sizes, n, dtype, members=2, per_member=True)
    f1, gt1, gx1, w = _at_threads(1, lambda: _taylor(theta, x, scale, shift, sizes, order))
    f2, gt2, gx2, _ = _at_threads(2, lambda: _taylor(theta, x, scale, shift, sizes, order))
    assert torch.equal(f2, f1) and torch.equal(gx2, gx1)
    grads = lambda *a: _taylor_grads(*a, sizes, order)  # noqa: E731
    bound = n * torch.finfo(dtype).eps * _point_abs_sum(grads, theta, x, scale, shift, w).to(dtype)
    assert bool(((gt2 - gt1).abs() <= bound).all()), float((gt2 - gt1).abs().max())


def test_batched_backward_at_2_threads_equals_the_single_calls() -> None:
    """The batched-cotangent backward splits its items into the same blocks as mlp_jet_backward, so each of its K
    gradients is the single call's, bit for bit, at 2 threads too."""
    if not hasattr(torch.ops.fastpinn, "mlp_jet_backward_batched"):
        pytest.skip("fastpinn._C lacks mlp_jet_backward_batched")
    sizes, requests = NETS["wide-2x150"]
    theta, x, scale, shift = _inputs(sizes, 1001, torch.float32, members=2)
    args = _jet_args(sizes, requests)

    def run():
        fields, tape = torch.ops.fastpinn.mlp_jet_forward(theta, x, scale, shift, *args, False)
        grads = torch.stack([_weights(fields.shape, theta.dtype) * (k + 1) for k in range(3)])
        single = torch.stack([torch.ops.fastpinn.mlp_jet_backward(g, theta, x, scale, shift, tape, *args, False)[0]
                              for g in grads])
        return single, torch.ops.fastpinn.mlp_jet_backward_batched(grads, theta, x, scale, shift, tape, *args, "tanh")

    single, batched = _at_threads(2, run)
    assert torch.equal(batched, single)
