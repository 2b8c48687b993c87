"""The flat-parameter MLP."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fastpinn import MLP


def test_paper_burgers_network_has_3021_parameters():
    net = MLP(2, 1, depth=9, width=20)
    assert net.n_params == 3021
    assert net.theta.shape == (3021,)
    assert len(net.layers()) == 9


def test_layers_are_views_into_theta():
    net = MLP(3, 2, depth=3, width=5)
    (w0, b0), _, (w2, b2) = net.layers()
    assert w0.shape == (5, 3) and b0.shape == (5,) and w2.shape == (2, 5) and b2.shape == (2,)
    with torch.no_grad():
        net.theta.zero_()
        net.theta[0] = 7.0
    assert net.layers()[0][0][0, 0] == 7.0
    assert w0.data_ptr() == net.theta.data_ptr()


def test_forward_matches_equivalent_sequential():
    torch.manual_seed(0)
    net = MLP(2, 3, depth=4, width=7, lower=[0.0, -2.0], upper=[1.0, 2.0], dtype=torch.float64)
    seq = nn.Sequential(nn.Linear(2, 7), nn.Tanh(), nn.Linear(7, 7), nn.Tanh(), nn.Linear(7, 7), nn.Tanh(),
                        nn.Linear(7, 3)).double()
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, (w, b) in zip(linears, net.layers()):
            lin.weight.copy_(w)
            lin.bias.copy_(b + 0.1)  # non-zero biases exercise the bias path
            b.add_(0.1)
    x = torch.rand(11, 2, dtype=torch.float64) * torch.tensor([1.0, 4.0], dtype=torch.float64) - torch.tensor([0.0, 2.0], dtype=torch.float64)
    scaled = 2 * (x - torch.tensor([0.0, -2.0], dtype=torch.float64)) / torch.tensor([1.0, 4.0], dtype=torch.float64) - 1
    torch.testing.assert_close(net(x), seq(scaled), rtol=1e-13, atol=1e-13)


def test_input_scaling_maps_box_to_unit_cube():
    net = MLP(2, 1, depth=1, width=1, lower=[0.0, -1.0], upper=[1.0, 3.0], dtype=torch.float64)
    x = torch.tensor([[0.0, -1.0], [1.0, 3.0], [0.5, 1.0]], dtype=torch.float64)
    scaled = x * net.input_scale + net.input_shift
    torch.testing.assert_close(scaled, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64))


def test_glorot_normal_weights_and_zero_biases():
    net = MLP(200, 300, depth=2, width=400, seed=1)
    (w0, b0), (w1, b1) = net.layers()
    # 80,000 samples: the sample std is within ~0.5% of the true std (3 sigma), so 2% is a safe bound.
    assert w0.std().item() == pytest.approx(math.sqrt(2 / 600), rel=0.02)
    assert w1.std().item() == pytest.approx(math.sqrt(2 / 700), rel=0.02)
    assert bool((b0 == 0).all()) and bool((b1 == 0).all())


def test_ensemble_members_equal_single_networks():
    ens = MLP(2, 1, depth=3, width=6, ensemble=3, seed=5)
    assert ens.theta.shape == (3, ens.n_params)
    x = torch.rand(13, 2)
    out = ens(x)
    assert out.shape == (3, 13, 1)
    for s in range(3):
        single = MLP(2, 1, depth=3, width=6, seed=5 + s)
        torch.testing.assert_close(ens.theta[s], single.theta, rtol=0, atol=0)
        torch.testing.assert_close(out[s], single(x), rtol=1e-6, atol=1e-6)
    per_member = torch.rand(3, 13, 2)
    out2 = ens(per_member)
    for s in range(3):
        torch.testing.assert_close(out2[s], MLP(2, 1, depth=3, width=6, seed=5 + s)(per_member[s]), rtol=1e-6, atol=1e-6)
    assert ens.member_theta(2).data_ptr() == ens.theta[2].data_ptr()


def test_float32_and_float64_start_from_the_same_draw():
    a = MLP(2, 1, depth=3, width=6, seed=3, dtype=torch.float64)
    b = MLP(2, 1, depth=3, width=6, seed=3, dtype=torch.float32)
    torch.testing.assert_close(a.theta.float(), b.theta, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(depth=0), "depth"),
        (dict(width=0), "width"),
        (dict(ensemble=0), "ensemble"),
        (dict(lower=[0.0, 1.0], upper=[1.0, 1.0]), "upper"),
        (dict(lower=[0.0, 0.0, 0.0]), "lower"),
        (dict(dtype=torch.float16), "dtype"),
        (dict(ensemble=2, seed=[1, 2, 3]), "seed"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    args = dict(in_dim=2, out_dim=1, depth=2, width=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        MLP(**args)


# ---------------------------------------------------------------------------------------------
# Built-in networks: random Fourier features and the modified MLP (fastpinn.networks)
# ---------------------------------------------------------------------------------------------


def test_fourier_feature_mlp_is_an_mlp_on_fixed_random_features():
    from fastpinn import derivatives
    from fastpinn.derivatives import applicable_methods
    from fastpinn.networks import FourierFeatureMLP

    net = FourierFeatureMLP(2, 1, 3, 6, [0.0, -1.0], [2.0, 1.0], sigma=3.0, n_features=7, seed=2, dtype=torch.float64)
    assert net.n_features == 14 and net.layer_shapes[0] == (6, 14)
    B = torch.randn(2, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3.0
    torch.testing.assert_close(net.input_transform.B, B, rtol=0, atol=0)
    x = torch.rand(9, 2, dtype=torch.float64) * 2 - torch.tensor([0.0, 1.0], dtype=torch.float64)
    scaled = torch.stack([x[:, 0] - 1.0, x[:, 1]], dim=-1)  # [0, 2] x [-1, 1] -> [-1, 1]^2
    feats = torch.cat([torch.cos(2 * math.pi * scaled @ B), torch.sin(2 * math.pi * scaled @ B)], dim=-1)
    (w0, b0), (w1, b1), (w2, b2) = net.layers(net.theta.detach())
    plain = torch.tanh(torch.tanh(feats @ w0.T + b0) @ w1.T + b1) @ w2.T + b2
    torch.testing.assert_close(net(x), plain, rtol=1e-13, atol=1e-13)
    # B is not trained, travels with the network, and is drawn the same in any dtype
    assert [n for n, _ in net.named_parameters()] == ["theta"]
    assert "input_transform.B" in net.state_dict()
    assert net.to(torch.float32).input_transform.B.dtype == torch.float32
    net.double()
    reasons = applicable_methods(net, ["u_xx"], ("t", "x"))
    assert reasons["jet"] is None and "no input/output transforms" in reasons["fused"]
    requests = ["u", "u_t", "u_xx", "u_tx"]
    jet = derivatives(net, x, ("t", "x"), requests, method="jet")
    ref = derivatives(net, x, ("t", "x"), requests, method="autograd")
    for r in requests:  # features of frequency ~2 pi sigma: fields ~1e3, float64 rounding ~1e-13 of that
        torch.testing.assert_close(jet[r], ref[r], rtol=1e-11, atol=1e-11 * float(ref[r].detach().abs().max()))


def _modified_plain(net, x):
    """Wang, Teng & Perdikaris (2021), written out from the module's weights."""
    p = {n: t.detach() for n, t in net.named_parameters()}
    phi = torch.sin
    xs = x * net.input_scale + net.input_shift
    u = phi(xs @ p["encoder_u.weight"].T + p["encoder_u.bias"])
    v = phi(xs @ p["encoder_v.weight"].T + p["encoder_v.bias"])
    h = xs
    for k in range(net.depth - 1):
        z = phi(h @ p[f"gates.{k}.weight"].T + p[f"gates.{k}.bias"])
        h = (1 - z) * u + z * v
    return h @ p["output.weight"].T + p["output.bias"]


def test_modified_mlp_matches_its_equations_and_trains_through_the_generic_path():
    from fastpinn import derivatives
    from fastpinn.derivatives import choose_method
    from fastpinn.networks import ModifiedMLP

    net = ModifiedMLP(2, 3, depth=4, width=5, lower=[0.0, -1.0], upper=[1.0, 1.0], activation="sin",
                      init="glorot_uniform", seed=1, dtype=torch.float64)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 1:
                p.copy_(torch.linspace(-0.5, 0.5, p.numel(), dtype=torch.float64))  # exercise the biases
    x = torch.rand(7, 2, dtype=torch.float64)
    torch.testing.assert_close(net(x), _modified_plain(net, x), rtol=1e-14, atol=1e-14)
    assert net.gates[0].in_features == 2 and len(net.gates) == 3
    bound = math.sqrt(6.0 / (2 + 5))
    assert float(net.encoder_u.weight.detach().abs().max()) <= bound
    assert choose_method(net, None, [(1, 1)]) == "autograd"  # a plain module: autograd (choose_method)
    requests = ["u", "u_x", "u_tx", "u_xxx"]
    ref = derivatives(lambda pts: _modified_plain(net, pts), x, ("t", "x"), requests, method="autograd")
    for method in ("func", "autograd"):
        got = derivatives(net, x, ("t", "x"), requests, method=method)
        for r in requests:
            torch.testing.assert_close(got[r], ref[r], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="depth"):
        ModifiedMLP(2, 1, depth=1, width=4)
    with pytest.raises(ValueError, match="init must be one of glorot_normal, glorot_uniform"):
        ModifiedMLP(2, 1, depth=2, width=4, init="truncated_normal")


def test_modified_mlp_in_the_trainer():
    import fastpinn
    from fastpinn.networks import ModifiedMLP
    from fastpinn.problems import poisson1d
    from fastpinn.trainer import Trainer

    problem = poisson1d(0, n_pde=16, depth=3, width=8)
    net = ModifiedMLP(1, 1, depth=3, width=8, lower=-1.0, upper=1.0)
    before = [p.detach().clone() for p in net.parameters()]
    trainer = Trainer(problem, fastpinn.DN(beta=0.9), network=net, backend="torch", eval_every=2)
    assert set(trainer.derivative_methods.values()) == {"autograd"}  # auto for a plain module
    history = trainer.train(4)
    assert all(not torch.equal(b, p) for b, p in zip(before, net.parameters()))
    assert history.epochs == 4
