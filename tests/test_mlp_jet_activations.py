"""The fused jet op with activations other than tanh (``sin``, ``silu``, ``softplus``: csrc/mlp_jet_kernel.h
``Act``) against the pure-PyTorch jets of ``jet_mlp`` (its oracle), forward fields and gradients wrt theta and x.

Tolerances: the rules of tests/test_mlp_jet.py (float64: 1e-11 of each field's scale; float32: 4x the float32
jet's own error against float64 plus 16 eps32 of the scale) -- the kernel evaluates the same jet formulas in
another order, and its sin/cos are within a few ulps of 1 (absolute) of the exact values, as torch's are.
The sin/cos themselves are checked directly on a 1-neuron network over |z| up to 12,000.
"""

from __future__ import annotations

import pytest
import torch

from fastpinn.derivatives import applicable_methods, choose_method, fused_mlp
from fastpinn.network import MLP
from fastpinn.ops import _ext, mlp_jet
from fastpinn.ops.mlp_jet import JET_ACTIVATIONS, TILE

from test_mlp_jet import (BURGERS, NS, _as64, assert_fields_close, assert_grads_close, make_net, points,
                          weighted_loss)

pytestmark = pytest.mark.skipif(not _ext.available(), reason="fastpinn._C is not built")

ACTS = [a for a in JET_ACTIVATIONS if a != "tanh"]

# (d, out, depth, width, derivative indices): widths 1..257 (257: one past 256, odd everywhere), mixed pairs.
CASES = {
    "helmholtz-4x17": (2, 1, 4, 17, [(), (0, 0), (1, 1)]),
    "width1": (2, 1, 3, 1, BURGERS),
    "d3-mixed-2out": (3, 2, 3, 6, [(), (1,), (0, 2), (1, 2), (2, 2)]),
    "wide-257": (2, 3, 3, 257, BURGERS),
}


# The wide case takes the same activation code as the narrow ones: one activation there keeps the file fast.
CASE_ACTS = [(c, a) for c in CASES for a in ACTS if c != "wide-257" or a == ACTS[0]]


@pytest.mark.parametrize("case,activation", CASE_ACTS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_fields_match_jet(case: str, dtype: torch.dtype, activation: str) -> None:
    d, out, depth, width, wanted = CASES[case]
    net = make_net(d, out, depth, width, dtype, activation=activation)
    for n in NS if width < 100 else (TILE + 1, 97):
        assert_fields_close(net, net.theta.detach(), points(n, d, dtype, seed=n), wanted)


@pytest.mark.parametrize("activation", ACTS)
def test_large_preactivations_match_jet(activation: str) -> None:
    """Weights x 30 put |z| at tens to thousands: sin's range reduction over many periods, silu's saturated
    sigmoid (exp clamped, float64)."""
    net = make_net(2, 1, 4, 9, torch.float64, activation=activation)
    assert_fields_close(net, net.theta.detach() * 30.0, points(TILE + 5, 2, torch.float64), BURGERS)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_sin_and_cos_to_a_few_ulps(dtype: torch.dtype) -> None:
    """u = sin(z), u_x = cos(z), u_xx = -sin(z) of a 1 -> 1 -> 1 sin net with z = x (identity input map): the
    kernel's sin and cos against float64 torch at the same (rounded) z, over |z| <= 12,000 (the range where the
    reduction's products are exact, csrc/mlp_jet_kernel.h) and at multiples of pi/2 (the worst cancellation).
    Bound: 4 ulps of 1 in the field's dtype (absolute)."""
    net = MLP(1, 1, 2, 1, activation="sin", dtype=dtype)  # box [-1, 1]: scale 1, shift 0
    theta = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=dtype)  # w0, b0, w1, b1
    gen = torch.Generator().manual_seed(0)
    z = torch.cat([torch.linspace(-12000, 12000, 4001, dtype=torch.float64),
                   (torch.rand(2000, generator=gen, dtype=torch.float64) - 0.5) * 20,
                   torch.arange(-200, 201, dtype=torch.float64) * (torch.pi / 2),
                   torch.tensor([0.0, 1e-30, -1e-8, 0.785, 0.786])]).to(dtype)
    got = fused_mlp(net, theta, z[:, None], [(), (0,), (0, 0)])
    exact = z.double()
    bound = 4 * torch.finfo(dtype).eps
    for key, ref in (((), torch.sin(exact)), ((0,), torch.cos(exact)), ((0, 0), -torch.sin(exact))):
        err = float((got[key][:, 0].double() - ref).abs().max())
        assert err <= bound, f"{key}: max error {err:.3e} > {bound:.3e}"
    nan = fused_mlp(net, theta, torch.tensor([[float("nan")], [float("inf")]], dtype=dtype), [()])
    assert bool(nan[()].isnan().all())


@pytest.mark.parametrize("activation", ["silu", "softplus"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_sigmoid_activations_and_derivatives_to_a_few_ulps(dtype: torch.dtype, activation: str) -> None:
    """u = phi(z), u_x = phi'(z), u_xx = phi''(z) of a 1 -> 1 -> 1 net with z = x, against the closed forms of
    fastpinn.network in float64 at the same z, over z in [-800, 800] (past the sigmoid's exp clamp, +-87 in float32,
    +-708 in float64) and near 0. Each field is a sum of terms of size <= 2 (1 + |z|); the kernel's exp, log1p and
    the sums round each within a few eps of that, so the bound is 16 eps (1 + |z|) (absolute)."""
    from fastpinn.network import ACTIVATIONS

    net = MLP(1, 1, 2, 1, activation=activation, dtype=dtype)
    theta = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=dtype)
    z = torch.cat([torch.linspace(-800, 800, 8001, dtype=torch.float64),
                   torch.linspace(-3, 3, 601, dtype=torch.float64), torch.tensor([1e-30, -1e-8])]).to(dtype)
    got = fused_mlp(net, theta, z[:, None], [(), (0,), (0, 0)])
    exact = ACTIVATIONS[activation].jet(z.double())
    bound = 16 * torch.finfo(dtype).eps * (1 + z.double().abs())
    for key, ref in zip(((), (0,), (0, 0)), exact):
        excess = float(((got[key][:, 0].double() - ref).abs() - bound).max())
        assert excess <= 0, f"{key}: error above the bound by {excess:.3e}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case,ensemble,store,activation", [
    (case, ens, store, a) for case, ens, store in [
        ("helmholtz-4x17", None, True), ("helmholtz-4x17", None, False), ("width1", None, False),
        ("d3-mixed-2out", 2, True), ("d3-mixed-2out", 2, False),
        ("wide-257", None, False),  # the default (recomputing) backward only: the stored one shares its tile code
    ] for a in ACTS if case != "wide-257" or a == ACTS[0]])
def test_gradients_wrt_theta_and_x_match_jet(case: str, ensemble, store: bool, dtype: torch.dtype, activation: str,
                                             monkeypatch) -> None:
    monkeypatch.setattr(mlp_jet, "STORE", store)
    d, out, depth, width, wanted = CASES[case]
    net = make_net(d, out, depth, width, dtype, ensemble=ensemble, activation=activation)
    net64 = _as64(net)
    for n in (1, TILE + 1, 97) if width < 100 else (TILE + 1,):
        x0 = points(n, d, dtype, seed=n)
        gen = torch.Generator().manual_seed(n)
        lead = (n, out) if ensemble is None else (ensemble, n, out)
        weights = {k: torch.randn(*lead, generator=gen, dtype=torch.float64) for k in wanted}
        w_d = {k: v.to(dtype) for k, v in weights.items()}

        def grads(fn, theta0, x_in, w):
            theta = theta0.detach().clone().requires_grad_(True)
            x = x_in.detach().clone().requires_grad_(True)
            model = net if theta.dtype == dtype else net64
            return torch.autograd.grad(weighted_loss(fn(model, theta, x, wanted), w), (theta, x),
                                       allow_unused=True, materialize_grads=True)

        assert_grads_close(grads, net.theta, x0, weights, w_d, dtype)


@pytest.mark.parametrize("activation", ACTS)
def test_gradcheck_float64(activation: str) -> None:
    net = MLP(3, 1, 3, 3, dtype=torch.float64, seed=3, activation=activation)
    wanted = [(), (0,), (1, 2), (2, 2)]
    theta = net.theta.detach().clone().requires_grad_(True)
    x = points(5, 3, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t, x: tuple(fused_mlp(net, t, x, wanted).values()), (theta, x))


def test_fused_applies_to_the_kernels_activations_only() -> None:
    for name in ("tanh", "sin", "silu", "gelu", "softplus"):
        net = MLP(2, 1, 3, 8, activation=name)
        reason = applicable_methods(net, ("u", "u_xx"), ("t", "x"))["fused"]
        assert (reason is None) == (name in JET_ACTIVATIONS), (name, reason)
    with pytest.raises(ValueError, match=r"activation must be one of tanh, sin, silu, softplus, got 'gelu'"):
        net = MLP(2, 1, 2, 3)
        torch.ops.fastpinn.mlp_jet_forward(net.theta.detach()[None], torch.zeros(3, 2), net.input_scale,
                                           net.input_shift, [2, 3, 1], [], [], [], False, "gelu")


def test_auto_considers_fused_for_a_sin_net() -> None:
    """Helmholtz' network (2 -> 3 x 150 -> 1, sin), u_xx + u_yy on 480 points: a candidate of ``auto`` again."""
    from fastpinn import method_costs

    net = MLP(2, 1, 4, 150, activation="sin")
    method = choose_method(net, torch.zeros(480, 2), [(), (0, 0), (1, 1)])
    cost = method_costs.predicted_ms(2, 150, 480)
    assert method == min(("fused", "jet", "autograd"), key=cost.__getitem__)


@pytest.mark.parametrize("activation", ACTS)
def test_trainer_fused_matches_jet(activation: str) -> None:
    """A few DN-PINN epochs of a small Burgers problem on a sin/silu/softplus network with derivative_method='fused'
    follow 'jet' to rounding in float64 (the tolerance of tests/test_mlp_jet.py's tanh version)."""
    import dataclasses

    import fastpinn
    from fastpinn import problems

    problem = dataclasses.replace(problems.get("burgers", (0, 1), n_pde=70, n_ic=9, n_bc=11, depth=4, width=10),
                                  solution=None)
    runs = {}
    for method in ("jet", "fused"):
        net = problem.network(dtype=torch.float64, activation=activation)
        t = fastpinn.Trainer(problem, fastpinn.DN(tau=2), network=net, dtype=torch.float64, backend="torch",
                             derivative_method=method, eval_every=1000)
        assert set(t.derivative_methods.values()) == {method}
        t.train(4)
        runs[method] = (t.net.theta.detach().clone(), t.weighter.lam.detach().clone())
    (th_j, lam_j), (th_f, lam_f) = runs["jet"], runs["fused"]
    torch.testing.assert_close(th_f, th_j, rtol=0, atol=1e-9)
    torch.testing.assert_close(lam_f, lam_j, rtol=1e-8, atol=0)


def test_opcheck_with_the_activation_argument() -> None:
    """The op's schema, fake implementation and autograd formula with the trailing ``activation`` argument (one
    activation, recomputing backward: tests/test_mlp_jet.py runs opcheck over the store variants)."""
    activation = ACTS[0]
    from fastpinn.ops.mlp_jet import JetPlan

    net = make_net(2, 1, 3, 5, torch.float64, ensemble=2, activation=activation)
    plan = JetPlan(BURGERS)
    pairs = [p for pair in plan.pairs for p in pair]
    theta = net.theta.detach().clone().requires_grad_(True)
    x = points(TILE + 3, 2, torch.float64)
    common = ([2, 5, 5, 1], plan.dirs, pairs, plan.first_out)
    for store in (False,):
        torch.library.opcheck(torch.ops.fastpinn.mlp_jet_forward.default,
                              (theta, x, net.input_scale, net.input_shift, *common, store, activation))
        fields, tape = torch.ops.fastpinn.mlp_jet_forward(theta.detach(), x, net.input_scale, net.input_shift, *common,
                                                          store, activation)
        torch.library.opcheck(torch.ops.fastpinn.mlp_jet_backward.default,
                              (torch.randn_like(fields), theta.detach(), x, net.input_scale, net.input_shift, tape,
                               *common, True, activation))
