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
