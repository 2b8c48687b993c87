"""The multi-scale Fourier feature network (Wang, Wang & Perdikaris 2021) equals its equations written by hand,
and trains in the Trainer through the generic derivative path."""

from __future__ import annotations

import math

import pytest
import torch

import fastpinn
from fastpinn.network import HardConstraint
from fastpinn.networks import MultiScaleFourierFeatureMLP


def _by_hand(net, x, sigmas, n_features, seed, lower, upper):
    """Each embedding gamma_i(x) = [cos 2 pi x~ B_i, sin 2 pi x~ B_i], B_i ~ N(0, sigma_i^2) from seed + i, x~ in
    [-1, 1]; the same tanh layers on each; the outputs concatenated; one linear layer."""
    xs = 2 * (x - lower) / (upper - lower) - 1
    outs = []
    for i, sigma in enumerate(sigmas):
        B = torch.randn(x.shape[-1], n_features, generator=torch.Generator().manual_seed(seed + i),
                        dtype=torch.float64) * sigma
        h = torch.cat([torch.cos(2 * math.pi * xs @ B), torch.sin(2 * math.pi * xs @ B)], -1)
        for layer in net.trunk:
            h = torch.tanh(h @ layer.weight.T + layer.bias)
        outs.append(h)
    return torch.cat(outs, -1) @ net.output.weight.T + net.output.bias


def test_multiscale_fourier_features_match_a_hand_built_network():
    net = MultiScaleFourierFeatureMLP(2, 3, depth=3, width=5, lower=[0.0, -1.0], upper=[1.0, 1.0],
                                      sigmas=(1.0, 10.0), n_features=4, seed=2, dtype=torch.float64)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 1:
                p.copy_(torch.linspace(-0.5, 0.5, p.numel(), dtype=torch.float64))  # exercise the biases
    x = torch.rand(7, 2, dtype=torch.float64)
    lower, upper = torch.tensor([0.0, -1.0], dtype=torch.float64), torch.tensor([1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(net(x), _by_hand(net, x, (1.0, 10.0), 4, 2, lower, upper), rtol=1e-12, atol=1e-12)
    assert len(net.trunk) == 2 and net.output.in_features == 2 * 5  # depth - 1 shared layers, two branches
    assert net.n_params == (8 * 5 + 5) + (5 * 5 + 5) + (10 * 3 + 3)  # the run records read it
    from fastpinn.networks import ModifiedMLP  # the other plain network, the same defect
    modified = ModifiedMLP(2, 1, depth=3, width=4)
    assert modified.n_params == sum(p.numel() for p in modified.parameters()) == 3 * (2 * 4 + 4) + (4 * 4 + 4) + 5
    hard = HardConstraint(lambda x: torch.zeros_like(x[..., :1]), lambda x: x[..., :1])
    constrained = MultiScaleFourierFeatureMLP(2, 1, depth=2, width=4, output_transform=hard)
    assert float(constrained(torch.tensor([[0.0, 0.3]])).detach().abs()) == 0.0
    with pytest.raises(ValueError, match="sigmas"):
        MultiScaleFourierFeatureMLP(1, 1, depth=2, width=4, sigmas=())
    with pytest.raises(ValueError, match="depth"):
        MultiScaleFourierFeatureMLP(1, 1, depth=1, width=4)
    with pytest.raises(ValueError, match="ensemble: MultiScaleFourierFeatureMLP trains one network"):
        MultiScaleFourierFeatureMLP(1, 1, depth=2, width=4, seed=[0, 1], ensemble=2)


def test_multiscale_fourier_features_train_in_the_trainer():
    from fastpinn.problems import poisson1d

    problem = poisson1d(0, n_pde=16, depth=3, width=8)
    net = MultiScaleFourierFeatureMLP(1, 1, depth=3, width=8, sigmas=(1.0, 5.0), n_features=8)
    before = [p.detach().clone() for p in net.parameters()]
    trainer = fastpinn.Trainer(problem, fastpinn.DN(beta=0.9), network=net, backend="torch", eval_every=2)
    assert set(trainer.derivative_methods.values()) == {"autograd"}
    assert trainer.train(4).epochs == 4
    assert all(not torch.equal(b, p) for b, p in zip(before, net.parameters()))


def test_a_plain_network_problem_trains_through_the_cli(tmp_path):
    # `fastpinn train FILE.py:make_problem` read `net.n_params`, which only MLP had: AttributeError for the
    # multi-scale network (and ModifiedMLP) before they reported their size
    from pathlib import Path

    from fastpinn import cli

    example = Path(__file__).resolve().parents[1] / "examples" / "multiscale_poisson.py"
    assert cli.main(["train", f"{example}:make_problem", "--epochs", "2", "--eval-every", "2", "--no-figures",
                     "--no-progress", "--compile", "off", "--threads", "1", "--backend", "torch",
                     "--out", str(tmp_path / "run")]) in (0, None)


def test_fourier_features_take_several_scales_in_one_embedding():
    from fastpinn.networks import FourierFeatureMLP, FourierFeatures

    one = FourierFeatures(1, 400, 1.0, 0.0, 1.0, seed=3)
    two = FourierFeatures(1, 400, (1.0, 10.0), 0.0, 1.0, seed=3)
    assert two.B.shape == (1, 800) and two(torch.rand(5, 1)).shape == (5, 1600)
    torch.testing.assert_close(two.B[:, :400], one.B)  # the first scale's block is the single-scale draw
    assert 7.0 < float(two.B[:, 400:].std() / two.B[:, :400].std()) < 14.0  # sample stds of 400 draws: ratio ~10
    net = FourierFeatureMLP(1, 1, 3, 8, 0.0, 1.0, sigma=(1.0, 10.0), n_features=4)
    assert net.n_features == 16 and "sigma=(1.0, 10.0)" in repr(net)
    with pytest.raises(ValueError, match="sigma"):
        FourierFeatures(1, 4, ())
    with pytest.raises(ValueError, match="sigma"):
        FourierFeatures(1, 4, (1.0, -2.0))
