"""The fused jet op fastpinn::mlp_jet_{forward,backward} (derivative method "fused") against the pure-PyTorch
jets of ``derivatives.jet_mlp`` (and, once, nested autograd).

Tolerances. The fused op evaluates the same formulas as ``jet_mlp`` with another summation order (register
blocks of 4 rows, FMAs) and its own tanh (a few ulps, see csrc/mlp_jet_kernel.h), so the two differ by
rounding that the network amplifies layer by layer.
* float64: the ``jet_mlp`` result is the reference; the max error over points of each field must stay
  below ``F64_RTOL = 1e-11`` times the field's max magnitude. Depth 9 x width 128 sums of ~1e2 terms with
  eps64 = 2.2e-16 give errors of ~1e-14 of the scale, and gradients add a sum over the points; 1e-11 leaves
  two to three orders of margin while any formula error (a wrong sign, a dropped term, a tile edge) is O(1).
* float32: both float32 results are compared with the float64 jets of the same (cast) parameters and points.
  The fused error must be at most ``4x`` the error of ``jet_mlp`` in float32 (the accepted rounding of the
  formulation at this precision), plus ``16 eps32`` of the scale as a floor for cases where the float32
  reference is exact by luck (e.g. a depth-1 net, N = 1).
The same two rules apply to the gradients wrt theta (norms of the whole gradient) and wrt x.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools

import pytest
import torch

import fastpinn
from fastpinn.derivatives import derivatives, fastest_method, fused_mlp, jet_mlp
from fastpinn.network import MLP
from fastpinn.ops import _ext, mlp_jet
from fastpinn.ops.mlp_jet import TILE, JetPlan
from fastpinn import problems

pytestmark = pytest.mark.skipif(not _ext.available(), reason="fastpinn._C is not built")

F64_RTOL = 1e-11
F32_FACTOR, F32_FLOOR_ULPS = 4.0, 16.0
EPS32 = torch.finfo(torch.float32).eps
NS = (1, TILE - 1, TILE, TILE + 1, 97, 257)  # odd sizes around the tile, and primes

# (d, out, depth, width, derivative indices): the paper's three networks with the channels their terms use,
# and small shapes that cover the edge cases (affine net, odd widths, 3 coordinates with mixed pairs, 2 outputs).
BURGERS = [(), (0,), (1,), (1, 1)]  # u, u_t, u_x, u_xx
CASES = {
    "burgers-9x20": (2, 1, 9, 20, BURGERS),
    "poisson-5x50": (2, 1, 5, 50, [(0, 0), (1, 1)]),  # u_xx, u_yy
    "allen-cahn-5x128": (2, 1, 5, 128, [(), (0,), (1, 1)]),  # u, u_t, u_xx
    "periodic-u_x": (2, 1, 5, 128, [(1,)]),
    "depth1-affine": (2, 1, 1, 7, [(), (0,), (1,), (0, 1), (1, 1)]),
    "depth2-width3": (2, 1, 2, 3, BURGERS),
    "d3-mixed-all": (3, 1, 4, 13, [()] + [(i,) for i in range(3)] + list(itertools.combinations_with_replacement(range(3), 2))),
    "d3-mixed-only-2out": (3, 2, 3, 6, [(0, 2), (1, 2)]),
    # Wide layers take the backward's padded weight-gradient path (150 -> 160 columns; 7 output rows leave a
    # remainder of every register block size).
    "wide-150-odd": (3, 7, 3, 150, [(), (0,), (0, 2), (1, 1)]),
}


def make_net(d: int, out: int, depth: int, width: int, dtype: torch.dtype, ensemble=None, seed: int = 0,
             activation: str = "tanh") -> MLP:
    return MLP(d, out, depth, width, lower=[-1.0 + 0.5 * i for i in range(d)], upper=[1.0 + i for i in range(d)],
               ensemble=ensemble, seed=seed, dtype=dtype, activation=activation)


def points(n: int, d: int, dtype: torch.dtype, lead=(), seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(*lead, n, d, generator=gen, dtype=torch.float64) * 2.5 - 0.5).to(dtype)


def assert_fields_close(net: MLP, theta: torch.Tensor, x: torch.Tensor, wanted) -> None:
    got = fused_mlp(net, theta, x, wanted)
    if theta.dtype == torch.float64:
        ref = jet_mlp(net, theta, x, wanted)
        for k in wanted:
            assert got[k].shape == ref[k].shape and got[k].dtype == ref[k].dtype
            scale = ref[k].abs().max().clamp_min(1e-300)
            err = (got[k] - ref[k]).abs().max()
            assert err <= F64_RTOL * scale, f"{k}: error {err:.3e} > {F64_RTOL:.0e} x {scale:.3e}"
        return
    exact = jet_mlp(_as64(net), theta.double(), x.double(), wanted)
    ref32 = jet_mlp(net, theta, x, wanted)
    for k in wanted:
        assert got[k].shape == ref32[k].shape and got[k].dtype == torch.float32
        scale = exact[k].abs().max()
        err = (got[k].double() - exact[k]).abs().max()
        bound = F32_FACTOR * (ref32[k].double() - exact[k]).abs().max() + F32_FLOOR_ULPS * EPS32 * scale
        assert err <= bound, f"{k}: error {err:.3e} > bound {bound:.3e} (scale {scale:.3e})"


def _as64(net: MLP) -> MLP:
    """The network in float64 (a cast copy of a float32 one: its buffers are used, its theta is not)."""
    return net if net.theta.dtype == torch.float64 else copy.deepcopy(net).double()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(CASES))
def test_fields_match_jet_on_odd_sizes(case: str, dtype: torch.dtype) -> None:
    d, out, depth, width, wanted = CASES[case]
    net = make_net(d, out, depth, width, dtype)
    for n in NS:
        assert_fields_close(net, net.theta.detach(), points(n, d, dtype, seed=n), wanted)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-x", "own-x"])
def test_ensemble_fields_match_jet(dtype: torch.dtype, shared: bool) -> None:
    net = make_net(2, 1, 4, 11, dtype, ensemble=3)
    for n in (1, TILE + 1, 61):
        x = points(n, 2, dtype, lead=() if shared else (3,), seed=n)
        assert_fields_close(net, net.theta.detach(), x, BURGERS)


def test_single_network_keeps_leading_shape_of_x() -> None:
    net = make_net(2, 1, 3, 5, torch.float64)
    x = points(35, 2, torch.float64).reshape(5, 7, 2)
    got = fused_mlp(net, net.theta.detach(), x, BURGERS)
    ref = jet_mlp(net, net.theta.detach(), x, BURGERS)
    for k in BURGERS:
        assert got[k].shape == (5, 7, 1)
        torch.testing.assert_close(got[k], ref[k], rtol=F64_RTOL, atol=F64_RTOL)


def test_saturated_and_tiny_preactivations_match_jet() -> None:
    """Weights x 30 push |z| past the tanh clamp (20) at most points; weights x 1e-4 keep |z| tiny, where a
    naive (1 - e) / (1 + e) tanh would lose its relative accuracy. Both in float64 (the kernel's clamp and its
    s = 4 e / (2 + m)^2 path against 1 - tanh^2). In float32 only the tiny case: at 30x weights the fields are
    so ill-conditioned (the float32 jet itself is off by ~1e-5 relative) that two valid roundings differ by
    ratios no fixed factor bounds."""
    for factor in (30.0, 1e-4):
        net = make_net(2, 1, 4, 9, torch.float64)
        assert_fields_close(net, net.theta.detach() * factor, points(TILE + 5, 2, torch.float64), BURGERS)
    net32 = make_net(2, 1, 4, 9, torch.float32)
    assert_fields_close(net32, net32.theta.detach() * 1e-4, points(TILE + 5, 2, torch.float32), BURGERS)


def test_matches_nested_autograd_in_float64() -> None:
    d, out, depth, width, wanted = CASES["d3-mixed-all"]
    net = make_net(d, out, depth, width, torch.float64)
    x = points(TILE + 3, d, torch.float64)
    coords = ("t", "x", "y")
    requests = [tuple(coords[i] for i in w) for w in wanted]
    got = derivatives(net, x, coords, requests, method="fused")
    ref = derivatives(net, x, coords, requests, method="autograd")
    for r in requests:
        torch.testing.assert_close(got[r], ref[r], rtol=1e-10, atol=1e-10)


def weighted_loss(values: dict, weights: dict) -> torch.Tensor:
    return sum((values[k] * weights[k]).sum() for k in weights)


def assert_grads_close(grads, theta, x0, weights, w_d, dtype: torch.dtype) -> None:
    """The fused gradients w.r.t. (theta, x) against the jet twin's: float64 to F64_RTOL; float32 within
    F32_FACTOR times the float32 twin's own error against the float64 twin, plus a few ulps.
    ``grads(fn, theta, x, w)``: the gradients of the weighted fields of ``fn`` (``w_d``: weights in ``dtype``)."""
    got = grads(fused_mlp, theta, x0, w_d)
    if dtype == torch.float64:
        ref = grads(jet_mlp, theta, x0, w_d)
        for g, r in zip(got, ref):
            assert (g - r).norm() <= F64_RTOL * r.norm().clamp_min(1e-300)
    else:
        exact = grads(jet_mlp, theta.double(), x0.double(), weights)
        ref32 = grads(jet_mlp, theta, x0, w_d)
        for g, r, e in zip(got, ref32, exact):
            bound = F32_FACTOR * (r.double() - e).norm() + F32_FLOOR_ULPS * EPS32 * e.norm()
            assert (g.double() - e).norm() <= bound


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case,ensemble", [("burgers-9x20", None), ("poisson-5x50", None), ("allen-cahn-5x128", None),
                                           ("depth1-affine", None), ("d3-mixed-all", None), ("d3-mixed-only-2out", 2),
                                           ("depth2-width3", 3)])
@pytest.mark.parametrize("store", [True, False], ids=["stored", "recomputed"])
def test_gradients_wrt_theta_and_x_match_jet(case: str, ensemble, dtype: torch.dtype, store: bool, monkeypatch) -> None:
    monkeypatch.setattr(mlp_jet, "STORE", store)
    d, out, depth, width, wanted = CASES[case]
    net = make_net(d, out, depth, width, dtype, ensemble=ensemble)
    for n in (1, TILE + 1, 97):
        x0 = points(n, d, dtype, seed=n)
        gen = torch.Generator().manual_seed(n)
        lead = (n, out) if ensemble is None else (ensemble, n, out)
        weights = {k: torch.randn(*lead, generator=gen, dtype=torch.float64) for k in wanted}

        def grads(fn, theta0, x_in, w):
            theta = theta0.detach().clone().requires_grad_(True)
            x = x_in.detach().clone().requires_grad_(True)
            return torch.autograd.grad(weighted_loss(fn(net if theta.dtype == dtype else net64, theta, x, wanted), w),
                                       (theta, x), allow_unused=True, materialize_grads=True)

        net64 = _as64(net) if dtype == torch.float32 else net
        w_d = {k: v.to(dtype) for k, v in weights.items()}
        assert_grads_close(grads, net.theta, x0, weights, w_d, dtype)


@pytest.mark.parametrize("store", [True, False], ids=["stored", "recomputed"])
def test_gradcheck_float64(store: bool, monkeypatch) -> None:
    monkeypatch.setattr(mlp_jet, "STORE", store)
    d, out, depth, width, wanted = CASES["d3-mixed-all"]
    net = MLP(d, out, 3, 3, dtype=torch.float64, seed=3)
    theta = net.theta.detach().clone().requires_grad_(True)
    x = points(5, d, torch.float64).requires_grad_(True)

    def f(theta, x):
        return tuple(fused_mlp(net, theta, x, wanted).values())

    assert torch.autograd.gradcheck(f, (theta, x))
    ens = MLP(2, 1, 3, 3, ensemble=2, dtype=torch.float64, seed=4)
    theta2 = ens.theta.detach().clone().requires_grad_(True)
    x2 = points(3, 2, torch.float64, lead=(2,)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t, x: tuple(fused_mlp(ens, t, x, BURGERS).values()), (theta2, x2))


def _op_args(dtype=torch.float64, n=TILE + 3, ensemble=2, shared=True):
    net = make_net(2, 1, 3, 5, dtype, ensemble=ensemble)
    plan = JetPlan(BURGERS)
    x = points(n, 2, dtype, lead=() if shared else (ensemble,))
    pairs = [p for pair in plan.pairs for p in pair]
    return (net.theta.detach().clone().requires_grad_(True), x, net.input_scale, net.input_shift, [2, 5, 5, 1],
            plan.dirs, pairs, plan.first_out)


def _forward(*args, store=False):
    return torch.ops.fastpinn.mlp_jet_forward(*args, store)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-x", "own-x"])
def test_opcheck(dtype: torch.dtype, shared: bool) -> None:
    args = _op_args(dtype, shared=shared)
    theta, x, scale, shift, *plan = args
    grad = torch.randn(theta.shape[0], 4, x.shape[-2], 1, dtype=dtype)
    for store in (False, True):
        torch.library.opcheck(torch.ops.fastpinn.mlp_jet_forward.default, (*args, store))
        _, tape = _forward(theta.detach(), x, scale, shift, *plan, store=store)
        for x_grad in (False, True):
            torch.library.opcheck(torch.ops.fastpinn.mlp_jet_backward.default,
                                  (grad, theta.detach(), x, scale, shift, tape, *plan, x_grad))


def test_double_backward_raises_clearly() -> None:
    net = make_net(2, 1, 3, 5, torch.float64)
    theta = net.theta.detach().clone().requires_grad_(True)
    v = fused_mlp(net, theta, points(9, 2, torch.float64), BURGERS)
    (g,) = torch.autograd.grad(v[(1, 1)].square().sum(), theta, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.grad(g.square().sum(), theta)


def test_bad_arguments_are_named() -> None:
    theta, x, scale, shift, sizes, dirs, pairs, first_out = _op_args()
    with pytest.raises(RuntimeError, match="theta must have P = "):
        _forward(theta[:, 1:], x, scale, shift, sizes, dirs, pairs, first_out)
    with pytest.raises(RuntimeError, match="dirs must be coordinate indices"):
        _forward(theta, x, scale, shift, sizes, [0, 2], pairs, first_out)
    with pytest.raises(RuntimeError, match="x must have shape"):
        _forward(theta, x[:, :1], scale, shift, sizes, dirs, pairs, first_out)
    with pytest.raises(RuntimeError, match="must have theta's dtype"):
        _forward(theta, x.float(), scale, shift, sizes, dirs, pairs, first_out)
    fields, tape = _forward(theta.detach(), x, scale, shift, sizes, dirs, pairs, first_out, store=True)
    with pytest.raises(RuntimeError, match="tape must be empty"):
        torch.ops.fastpinn.mlp_jet_backward(torch.ones_like(fields), theta.detach(), x, scale, shift, tape[1:], sizes,
                                            dirs, pairs, first_out, False)
    with pytest.raises(NotImplementedError, match="orders"):
        fused_mlp(make_net(2, 1, 2, 3, torch.float64), theta[0], x, [(0, 0, 1)])
    with pytest.raises(ValueError, match="needs a fastpinn.network.MLP"):
        derivatives(torch.nn.Linear(2, 1), x.float(), method="fused")


def test_non_finite_parameters_propagate() -> None:
    """A NaN in theta must reach the fields (the trainer detects non-finite losses, never trains through)."""
    net = make_net(2, 1, 3, 5, torch.float64)
    theta = net.theta.detach().clone()
    theta[3] = float("nan")
    v = fused_mlp(net, theta, points(TILE + 1, 2, torch.float64), BURGERS)
    assert all(bool(t.isnan().all()) for t in v.values())


def test_empty_points() -> None:
    net = make_net(2, 1, 3, 5, torch.float64)
    theta = net.theta.detach().clone().requires_grad_(True)
    v = fused_mlp(net, theta, points(0, 2, torch.float64), BURGERS)
    assert v[()].shape == (0, 1)
    (g,) = torch.autograd.grad(sum(t.sum() for t in v.values()), theta)
    assert torch.equal(g, torch.zeros_like(g))


def test_fastest_method_considers_fused() -> None:
    net = make_net(2, 1, 4, 16, torch.float32)
    x = points(300, 2, torch.float32)

    def loss(method):
        f = derivatives(net, x, ("t", "x"), ("u", "u_t", "u_x", "u_xx"), method=method)
        return (f.u_t + f.u * f.u_x - 0.01 * f.u_xx).square().mean()

    choice = fastest_method(loss, net.theta, repeats=1)
    assert "fused" in choice.seconds and "fused" not in choice.rejected


@pytest.mark.parametrize("store", [True, False], ids=["stored", "recomputed"])
@pytest.mark.parametrize("name,kwargs,scheme", [
    ("burgers", dict(n_pde=70, n_ic=9, n_bc=11, depth=4, width=10), fastpinn.DN(tau=2)),
    ("allen_cahn", dict(n_pde=90, n_ic=9, n_bc=7, batch_size=40, depth=3, width=12), fastpinn.DN(tau=1)),
])
def test_trainer_fused_matches_jet(name: str, kwargs: dict, scheme, store: bool, monkeypatch) -> None:
    """A few DN-PINN epochs (per-term backward into G, mini-batches, periodic u_x terms, an ensemble of two
    seeds) with derivative_method='fused' follow 'jet' to rounding in float64."""
    monkeypatch.setattr(mlp_jet, "STORE", store)
    problem = dataclasses.replace(problems.get(name, (0, 1), **kwargs), solution=None)
    runs = {}
    for method in ("jet", "fused"):
        t = fastpinn.Trainer(problem, scheme, dtype=torch.float64, backend="torch", derivative_method=method,
                             eval_every=1000)
        hist = t.train(4)
        runs[method] = (t.net.theta.detach().clone(), t.weighter.lam.detach().clone(), hist)
    (th_j, lam_j, _), (th_f, lam_f, _) = runs["jet"], runs["fused"]
    # Four Adam steps: a rounding difference of ~1e-16 in the gradient moves theta by ~lr * 1e-16 / |g|
    # relative at worst; 1e-9 absolute is far above that and far below one step (lr = 1e-3).
    torch.testing.assert_close(th_f, th_j, rtol=0, atol=1e-9)
    torch.testing.assert_close(lam_f, lam_j, rtol=1e-8, atol=0)


_ISA_CHECK = """
import itertools
import torch
from fastpinn.derivatives import fused_mlp, jet_mlp
from fastpinn.network import MLP
for dtype, activation in itertools.product((torch.float64, torch.float32), ("tanh", "sin", "silu", "softplus")):
    # (3, 70): wide enough for the padded weight-gradient path (its in-register transposes per vector width)
    for depth, width, wanted in ((9, 20, [(), (0,), (1,), (1, 1)]), (4, 13, [(0, 1), (1, 1), (0,)]), (3, 70, [(), (1, 1)])):
        net = MLP(2, 1, depth, width, dtype=torch.float64, seed=5, activation=activation)
        x = torch.rand(67, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        theta = net.theta.detach().clone().requires_grad_(True)
        exact = jet_mlp(net, theta, x, wanted)
        g_exact, = torch.autograd.grad(sum(v.sum() for v in exact.values()), theta)
        net_d = net.to(dtype)
        theta_d = theta.detach().to(dtype).requires_grad_(True)
        got = fused_mlp(net_d, theta_d, x.to(dtype), wanted)
        g, = torch.autograd.grad(sum(v.sum() for v in got.values()), theta_d)
        # float64: 1e-11 of the scale as in this file's docstring; float32: 1e3 eps32 (~1e-4), the accuracy of
        # a depth-9 float32 jet (the other tests bound it against the float32 jet itself).
        rtol = 1e-11 if dtype == torch.float64 else 1e-4
        for k in wanted:
            err = float((got[k].double() - exact[k]).abs().max() / exact[k].abs().max())
            assert err <= rtol, (k, dtype, err)
        err = float((g.double() - g_exact).norm() / g_exact.norm())
        assert err <= rtol, ("grad", dtype, err)
print("ok")
"""


@pytest.mark.parametrize("isa", ["base", "avx2"])
def test_narrower_instruction_sets_match_jet(isa: str) -> None:
    """The kernel is built per instruction set and the widest one the CPU has is used; the narrower ones
    (FASTPINN_MLPJET_ISA caps the choice at process start) are checked in a subprocess."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, FASTPINN_MLPJET_ISA=isa, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _ISA_CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_two_threads_split_the_tiles_like_one() -> None:
    """With 2 threads the backward splits the (member, tile) items over two chunks whose partial gradients
    are summed: the result equals the 1-thread one up to the reassociation of that sum (float64, 1e-13)."""
    net = make_net(2, 1, 5, 12, torch.float64, ensemble=2)
    x = points(3 * TILE + 7, 2, torch.float64)
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            theta = net.theta.detach().clone().requires_grad_(True)
            v = fused_mlp(net, theta, x, BURGERS)
            (g,) = torch.autograd.grad(sum((t * t).sum() for t in v.values()), theta)
            results.append((torch.cat([t.flatten() for t in v.values()]), g))
    finally:
        torch.set_num_threads(before)
    (f1, g1), (f2, g2) = results
    assert torch.equal(f1, f2)  # the forward has no cross-tile reduction: identical
    torch.testing.assert_close(g2, g1, rtol=1e-13, atol=1e-13 * float(g1.abs().max()))


@pytest.mark.slow
def test_trainer_compiled_with_fused_matches_eager() -> None:
    """torch.compile traces the op through its fake implementation and autograd formula (~10 s of warm-up):
    the compiled terms train exactly like the eager ones (the op is opaque to inductor, same kernels)."""
    problem = dataclasses.replace(problems.burgers(0, n_pde=300, n_ic=20, n_bc=20, depth=4, width=10), solution=None)
    thetas = []
    for compile in (False, True):
        t = fastpinn.Trainer(problem, fastpinn.DN(tau=2), dtype=torch.float64, backend="torch",
                             derivative_method="fused", compile=compile, eval_every=1000)
        t.train(4)
        thetas.append(t.net.theta.detach().clone())
    torch.testing.assert_close(thetas[1], thetas[0], rtol=0, atol=1e-12)
