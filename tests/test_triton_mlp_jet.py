"""The Triton kernels of the fused jet op (fastpinn/kernels/mlp_jet.py) against ``derivatives.jet_mlp``.

Without a GPU they run under the Triton interpreter on CPU tensors (tests/conftest.py sets TRITON_INTERPRET=1),
on tiny shapes (a few seconds in all); with CUDA the same checks run compiled on the device, and the op's CUDA
dispatch (``derivatives(method="fused")``) and a short Trainer run are checked too.

Tolerances: float64 1e-11 of each field's scale, as in tests/test_mlp_jet.py (same formulas, other summation
order; the kernel's tanh is (1 - e) / (1 + e), exact to a few ulps in absolute terms). float32 2e-5 relative:
a few hundred eps32 -- the depth-3 nets here give the float32 jet itself errors of ~1e-6 of the scale against
float64, and the GPU sums rows in another order; formula errors are O(1).
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton")

from fastpinn.derivatives import jet_mlp  # noqa: E402
from fastpinn.ops.mlp_jet import JetPlan  # noqa: E402
from fastpinn.network import MLP  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
if not CUDA and not __import__("os").environ.get("TRITON_INTERPRET"):
    pytest.skip("no CUDA device and TRITON_INTERPRET is not set", allow_module_level=True)

from fastpinn.kernels.mlp_jet import BLOCK, mlp_jet_backward_triton, mlp_jet_forward_triton  # noqa: E402

RTOL = {torch.float64: 1e-11, torch.float32: 2e-5}
CASES = [  # (d, depth, width, wanted, ensemble, shared points)
    (2, 3, 5, [(), (0,), (1,), (1, 1)], None, True),  # Burgers' channels
    (2, 3, 6, [(0, 0), (1, 1)], 2, True),  # Poisson's, an ensemble on shared points
    (3, 2, 4, [(0, 2), (1, 2), (0,)], 2, False),  # mixed pairs, own points per member
    (2, 1, 3, [(), (0, 1), (1,)], None, True),  # depth 1 (affine)
]


def _run(case, dtype, n):
    d, depth, width, wanted, S, shared = case
    net = MLP(d, 1, depth, width, dtype=dtype, ensemble=S, seed=1, device=DEVICE)
    plan = JetPlan(wanted)
    gen = torch.Generator().manual_seed(n)
    lead = () if shared else (S,)
    x = torch.rand(*lead, n, d, generator=gen, dtype=torch.float64).to(dtype=dtype, device=DEVICE)
    theta = net.theta.detach() if S else net.theta.detach()[None]
    sizes = [d] + [width] * (depth - 1) + [1]
    pairs = [p for q in plan.pairs for p in q]
    order = [()] + plan.first + plan.second
    return net, plan, x, theta, sizes, pairs, order


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_triton_forward_and_backward_match_jet(case: int, dtype: torch.dtype) -> None:
    for n in (1, BLOCK + 1):
        net, plan, x, theta, sizes, pairs, order = _run(CASES[case], dtype, n)
        fields, tape = mlp_jet_forward_triton(theta, x, net.input_scale, net.input_shift, sizes, plan.dirs, pairs,
                                              plan.first_out)
        assert tape.numel() == 0 and fields.shape == (theta.shape[0], len(order), n, 1)
        th = theta.clone().requires_grad_(True)
        xx = x.clone().requires_grad_(True)
        ens = CASES[case][4] is not None
        ref = jet_mlp(net, th if ens else th[0], xx, plan.first + plan.second + [()])
        ref = {k: (v if ens else v[None]) for k, v in ref.items()}
        gen = torch.Generator().manual_seed(7)
        gf = torch.randn(fields.shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=DEVICE)
        for c, k in enumerate(order):
            scale = ref[k].abs().max().clamp_min(1e-30)
            assert (fields[:, c] - ref[k]).abs().max() <= RTOL[dtype] * scale, (k, n)
        loss = sum((ref[k] * gf[:, c]).sum() for c, k in enumerate(order))
        g_theta, g_x = torch.autograd.grad(loss, (th, xx))
        got_theta, got_x = mlp_jet_backward_triton(gf, theta, x, net.input_scale, net.input_shift, theta.new_empty(0),
                                                   sizes, plan.dirs, pairs, plan.first_out, True)
        assert got_theta.shape == g_theta.shape and got_x.shape == g_x.shape
        assert (got_theta - g_theta).norm() <= RTOL[dtype] * g_theta.norm()
        assert (got_x - g_x).norm() <= RTOL[dtype] * g_x.norm().clamp_min(1e-30)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device: the op's CUDA dispatch and a Trainer run on the GPU")
def test_fused_method_on_cuda_matches_jet() -> None:
    import dataclasses

    import fastpinn
    from fastpinn.derivatives import derivatives
    from fastpinn.problems import paper

    net = MLP(2, 1, 9, 20, dtype=torch.float64, device="cuda")
    x = torch.rand(1000, 2, dtype=torch.float64, device="cuda")
    req = ("u", "u_t", "u_x", "u_xx")
    got = derivatives(net, x, ("t", "x"), req, method="fused")
    ref = derivatives(net, x, ("t", "x"), req, method="jet")
    for r in req:
        torch.testing.assert_close(got[r], ref[r], rtol=1e-11, atol=1e-11 * float(ref[r].abs().max()))
    problem = dataclasses.replace(paper.burgers(0, n_pde=500, n_ic=50, n_bc=50, depth=4, width=10), solution=None)
    thetas = []
    for method in ("jet", "fused"):
        t = fastpinn.Trainer(problem, fastpinn.DN(tau=2), dtype=torch.float64, device="cuda",
                             derivative_method=method, eval_every=1000)
        t.train(4)
        thetas.append(t.net.theta.detach())
    torch.testing.assert_close(thetas[1], thetas[0], rtol=0, atol=1e-9)


_DISPATCH_CHECK = """
import torch
from fastpinn.ops import _ext
_ext.load()
from fastpinn.kernels.mlp_jet import mlp_jet_backward_triton, mlp_jet_forward_triton
# What register_autograd does for "cuda" on a GPU machine, here for "cpu": the op's autograd formula and
# fake implementation must work unchanged over the Triton kernels.
torch.library.register_kernel("fastpinn::mlp_jet_forward", "cpu", mlp_jet_forward_triton)
torch.library.register_kernel("fastpinn::mlp_jet_backward", "cpu", mlp_jet_backward_triton)
from fastpinn.derivatives import derivatives
from fastpinn.network import MLP
import fastpinn.ops.mlp_jet as mj
mj.STORE = False
net = MLP(2, 1, 3, 5, dtype=torch.float64, seed=2)
x = torch.rand(40, 2, dtype=torch.float64)
req = ("u", "u_t", "u_x", "u_xx")
def loss(method):
    f = derivatives(net, x, ("t", "x"), req, method=method)
    return (f.u_t + f.u * f.u_x - 0.01 * f.u_xx).square().mean()
g1, = torch.autograd.grad(loss("fused"), net.theta)
g2, = torch.autograd.grad(loss("jet"), net.theta)
assert (g1 - g2).norm() <= 1e-11 * g2.norm(), float((g1 - g2).norm() / g2.norm())
print("ok")
"""


@pytest.mark.skipif(CUDA, reason="on a GPU the CUDA dispatch itself is tested (test_fused_method_on_cuda_matches_jet)")
def test_triton_kernels_serve_the_op_dispatch() -> None:
    """The Triton functions registered as the op's kernels (here for CPU tensors, in a subprocess under the
    interpreter) give the same gradient as 'jet' through the op's autograd formula."""
    import os
    import subprocess
    import sys

    from fastpinn.ops import _ext

    if not _ext.available():
        pytest.skip("fastpinn._C is not built")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _DISPATCH_CHECK], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
