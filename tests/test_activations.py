"""Activations of fastpinn.MLP (tanh, sin, silu, gelu, softplus) and the Glorot-uniform initialisation.

Every derivative method must give the derivatives autograd gives. Tolerances: in float64 the methods evaluate the
same sums in different association orders, so they differ by a small multiple of eps = 2.2e-16 per operation
times the field's magnitude; through 3 layers of width 5 that stays below 1e-13 of the largest entry, and we
allow 1e-11 (a wrong closed form -- e.g. a missing factor in phi'' -- is off by O(1)). In float32 we compare
with the float64 autograd of the same parameters: float32 rounding (eps = 1.2e-7) amplified by the depth and the
derivative order stays below ~1e-5 of the magnitude; we allow 1e-4 at orders <= 2 and 1e-3 up to order 4.
"""

from __future__ import annotations

import math

import pytest
import torch

import fastpinn
from fastpinn import MLP, derivatives
from fastpinn.derivatives import applicable_methods, choose_method
from fastpinn.network import ACTIVATIONS, INITS

NAMES = tuple(ACTIVATIONS)
COORDS = ("t", "x", "y")
UP_TO_2 = ["u", "u_t", "u_x", "u_y", "u_xx", "u_tx", "u_yy", "u_ty"]
UP_TO_4 = UP_TO_2 + ["u_xxx", "u_txy", "u_xxxx", "u_ttxy", "u_xxyy"]


def _net(activation: str, dtype: torch.dtype = torch.float64, **kwargs) -> MLP:
    # Odd shapes (3 inputs, 2 outputs, width 5) and non-zero biases, on a box that is not [-1, 1].
    net = MLP(3, 2, depth=3, width=5, lower=[0.0, -2.0, 1.0], upper=[1.0, 2.0, 4.0], seed=3, dtype=dtype,
              activation=activation, **kwargs)
    with torch.no_grad():
        for _, b in net.layers():
            b.copy_(torch.linspace(-0.7, 0.9, b.shape[-1], dtype=dtype))
    return net


def _points(n: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return (torch.rand(n, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 4.0, 3.0], dtype=torch.float64)
            + torch.tensor([0.0, -2.0, 1.0], dtype=torch.float64)).to(dtype)


def _max_rel_error(got: fastpinn.Fields, ref: fastpinn.Fields, requests) -> float:
    worst = 0.0
    for r in requests:
        scale = max(1.0, float(ref[r].detach().abs().max()))
        worst = max(worst, float((got[r].double() - ref[r]).detach().abs().max()) / scale)
    return worst


@pytest.mark.parametrize("name", NAMES)
def test_closed_form_derivatives_match_autograd(name):
    z = torch.cat([torch.linspace(-40.0, 40.0, 161, dtype=torch.float64), torch.tensor([0.0, 1e-8, -1e-8],
                                                                                       dtype=torch.float64)])
    a, d1, d2 = ACTIVATIONS[name].jet(z)
    zg = z.clone().requires_grad_(True)
    v = ACTIVATIONS[name].value(zg)
    (g1,) = torch.autograd.grad(v.sum(), zg, create_graph=True)
    (g2,) = torch.autograd.grad(g1.sum(), zg)
    torch.testing.assert_close(a, v.detach(), rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(d1, g1.detach(), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(d2, g2, rtol=1e-13, atol=1e-15)
    assert bool(torch.isfinite(a).all() & torch.isfinite(d1).all() & torch.isfinite(d2).all())
    factored = ACTIVATIONS[name].factored
    if factored is not None:  # the jet's cheaper form phi'' = phi' rho gives the same numbers
        fa, fd1, r, c = factored(z)
        assert torch.equal(fa, a) and torch.equal(fd1, d1) and isinstance(c, float)
        torch.testing.assert_close(fd1 * (c * r), d2, rtol=1e-15, atol=0)


def test_closed_forms_are_the_textbook_ones():
    z = torch.tensor([-1.3, 0.0, 0.4, 2.0], dtype=torch.float64)
    sig = torch.sigmoid(z)
    _, d1, d2 = ACTIVATIONS["sin"].jet(z)
    torch.testing.assert_close(d1, torch.cos(z)) and torch.testing.assert_close(d2, -torch.sin(z))
    _, d1, _ = ACTIVATIONS["softplus"].jet(z)
    torch.testing.assert_close(d1, sig)
    value, _, _ = ACTIVATIONS["gelu"].jet(z)
    torch.testing.assert_close(value, z * 0.5 * (1 + torch.erf(z / math.sqrt(2))))
    value, _, _ = ACTIVATIONS["silu"].jet(z)
    torch.testing.assert_close(value, z * sig)
    # softplus has no overflow and no cut-off far out
    assert float(ACTIVATIONS["softplus"].value(torch.tensor(800.0, dtype=torch.float64))) == 800.0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("ensemble", [None, 2])
def test_jet_and_func_match_autograd_float64(name, ensemble):
    net = _net(name, ensemble=ensemble)
    x = _points(7, torch.float64)
    ref = derivatives(net, x, COORDS, UP_TO_4, method="autograd")
    jet = derivatives(net, x, COORDS, UP_TO_2, method="jet")
    func = derivatives(net, x, COORDS, UP_TO_4, method="func")
    assert _max_rel_error(jet, ref, UP_TO_2) <= 1e-11
    assert _max_rel_error(func, ref, UP_TO_4) <= 1e-11
    # the network really is that activation: autograd agrees with a hand-written forward
    h = net.features(x.unsqueeze(0).expand(ensemble, *x.shape) if ensemble else x)
    for i, (w, b) in enumerate(net.layers()):
        h = h @ w.transpose(-1, -2) + b.unsqueeze(-2)
        if i < net.depth - 1:
            h = {"tanh": torch.tanh, "sin": torch.sin, "silu": torch.nn.functional.silu,
                 "gelu": torch.nn.functional.gelu, "softplus": torch.nn.functional.softplus}[name](h)
    torch.testing.assert_close(ref["u"], h, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_float32_methods_match_float64_autograd(name):
    net64 = _net(name)
    net32 = _net(name, dtype=torch.float32)
    with torch.no_grad():
        net32.theta.copy_(net64.theta.float())
        net64.theta.copy_(net32.theta.double())  # the very same parameters
    x32 = _points(9, torch.float32)
    ref = derivatives(net64, x32.double(), COORDS, UP_TO_4, method="autograd")
    assert _max_rel_error(derivatives(net32, x32, COORDS, UP_TO_2, method="jet"), ref, UP_TO_2) <= 1e-4
    for method in ("func", "autograd"):
        assert _max_rel_error(derivatives(net32, x32, COORDS, UP_TO_4, method=method), ref, UP_TO_4) <= 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_parameter_gradients_of_jet_match_autograd(name):
    net = _net(name)
    x = _points(6, torch.float64)

    def grad(method):
        f = derivatives(net, x, COORDS, ["u_xx", "u_ty", "u_t"], method=method)
        loss = (f["u_xx"] + f["u_ty"] * f["u_t"]).square().sum()
        return torch.autograd.grad(loss, net.theta)[0]

    ref = grad("autograd")
    torch.testing.assert_close(grad("jet"), ref, rtol=1e-11, atol=1e-11 * float(ref.abs().max()))


def test_fused_refuses_other_activations_and_auto_picks_jet():
    # The compiled kernel knows tanh, sin, silu and softplus (tests/test_mlp_jet_activations.py); gelu it does not.
    net = _net("gelu")
    reasons = applicable_methods(net, ["u", "u_xx"], COORDS)
    assert "knows the activations ('tanh', 'sin', 'silu', 'softplus')" in reasons["fused"]
    assert "'gelu'" in reasons["fused"]
    assert reasons["jet"] is None and reasons["func"] is None and reasons["autograd"] is None
    assert applicable_methods(_net("tanh"), ["u", "u_xx"], COORDS)["fused"] is None
    assert choose_method(net, None, [(1, 1)]) == "jet"
    with pytest.raises(ValueError, match="method 'fused' does not apply: the compiled kernel knows the activations"):
        derivatives(net, _points(4, torch.float64), COORDS, ["u_xx"], method="fused")


def test_bad_activation_and_init_name_the_field_and_choices():
    with pytest.raises(ValueError, match=r"activation must be one of tanh, sin, silu, gelu, softplus, got 'relu'"):
        MLP(2, 1, 2, 4, activation="relu")
    with pytest.raises(ValueError, match=r"init must be one of glorot_normal, glorot_uniform, truncated_normal"):
        MLP(2, 1, 2, 4, init="he")


def test_activation_shows_in_repr():
    assert "activation='gelu'" in repr(MLP(2, 1, 2, 4, activation="gelu"))
    assert "activation" not in repr(MLP(2, 1, 2, 4))  # the default stays as it was


def test_glorot_uniform_bounds_variance_and_zero_biases():
    assert "glorot_uniform" in INITS
    net = MLP(200, 300, depth=2, width=400, seed=1, init="glorot_uniform", dtype=torch.float64)
    for (w, b), (n_out, n_in) in zip(net.layers(net.theta.detach()), net.layer_shapes):
        a = math.sqrt(6.0 / (n_in + n_out))
        assert float(w.abs().max()) <= a
        # 80,000+ samples of U(-a, a): the extremes come within 1e-3 a of the bounds with overwhelming probability
        assert float(w.max()) > 0.999 * a and float(w.min()) < -0.999 * a
        # sample variance of U(-a, a): a^2/3 = 2/(fan_in + fan_out); its relative std is sqrt(0.8 / n) < 0.4%,
        # so 2% is > 5 sigma. The mean's std is a / sqrt(3 n) < 0.002 a.
        assert float(w.var()) == pytest.approx(2.0 / (n_in + n_out), rel=0.02)
        assert abs(float(w.mean())) < 0.01 * a
        assert bool((b == 0).all())
    # a uniform, not a normal: the 4th standardized moment of U is 1.8 (a normal's is 3)
    w0 = net.layers(net.theta.detach())[0][0]
    kurtosis = float(((w0 - w0.mean()) ** 4).mean() / w0.var() ** 2)
    assert kurtosis == pytest.approx(1.8, abs=0.05)
    # seeded like the other inits: same seed same draw, float32 the float64 draw rounded
    again = MLP(200, 300, depth=2, width=400, seed=1, init="glorot_uniform", dtype=torch.float32)
    torch.testing.assert_close(again.theta, net.theta.float(), rtol=0, atol=0)


def test_checkpoint_of_another_activation_is_refused(tmp_path):
    from fastpinn.problems import poisson1d
    from fastpinn.trainer import CheckpointError, Trainer

    problem = poisson1d(0, n_pde=12, depth=2, width=4)

    def trainer(activation):
        net = problem.network()
        net = MLP(net.in_dim, net.out_dim, net.depth, net.width, net.lower, net.upper, activation=activation)
        return Trainer(problem, fastpinn.DN(beta=0.9), network=net, backend="torch", eval_every=2)

    a = trainer("sin")
    a.train(2)
    path = tmp_path / "ckpt.pt"
    a.save_checkpoint(str(path))
    trainer("sin").load_checkpoint(str(path))  # the same network resumes
    with pytest.raises(CheckpointError, match="network.activation is 'sin' in the checkpoint but 'tanh' here"):
        trainer("tanh").load_checkpoint(str(path))
