"""Input and output transforms of fastpinn.MLP (hard constraints, feature maps): exact derivatives by every method.

The oracle is nested autograd through a plain composition ``h(x, Sequential(phi(x)))`` written out here. The
methods differ from it only by association order of the same float64 sums (see test_activations.py for the
argument); 1e-11 of the field's magnitude is far above that and far below any wrong chain-rule term.
"""

from __future__ import annotations

import math

import pytest
import torch

import fastpinn
from fastpinn import MLP, derivatives
from fastpinn.derivatives import applicable_methods, choose_method
from fastpinn.network import HardConstraint

COORDS = ("t", "x")
UP_TO_2 = ["u", "u_t", "u_x", "u_xx", "u_tx", "u_tt"]
UP_TO_4 = UP_TO_2 + ["u_txx", "u_xxxx", "u_ttxx"]
L = 1.7


def periodic(x):  # features periodic in x with period L; t passes through
    w = 2 * math.pi / L
    return torch.cat([x[..., :1], torch.cos(w * x[..., 1:]), torch.sin(w * x[..., 1:])], dim=-1)


def polar(x):  # (r, cos theta, sin theta) of the point (t, x) seen as a plane point
    r = torch.sqrt(x[..., :1] ** 2 + x[..., 1:] ** 2)
    return torch.cat([r, x[..., :1] / r, x[..., 1:] / r], dim=-1)


HARD = HardConstraint(lambda x: torch.sin(math.pi * x[..., 1:]) * torch.exp(-x[..., :1]),  # u(t=0) = sin(pi x)
                      lambda x: x[..., :1] * (1 - x[..., 1:] ** 2))  # d vanishes on t = 0 and x = +-1


def general(x, n):  # a pointwise map that mixes x and N nonlinearly, two outputs -> two outputs
    return torch.cat([x[..., :1] * n[..., :1] ** 2 + torch.sin(n[..., 1:]), torch.exp(x[..., 1:]) * n[..., 1:]], dim=-1)


CASES = {
    "hard": dict(output_transform=HARD),
    "general": dict(output_transform=general),
    "periodic": dict(input_transform=periodic),
    "polar+hard": dict(input_transform=polar, output_transform=HARD),
    "periodic+general": dict(input_transform=periodic, output_transform=general),
}


def _net(case: str, *, activation: str = "tanh", ensemble=None, dtype=torch.float64) -> MLP:
    net = MLP(2, 2, depth=3, width=5, lower=[0.0, -1.0], upper=[1.0, 1.0], seed=4, dtype=dtype,
              activation=activation, ensemble=ensemble, **CASES[case])
    with torch.no_grad():
        for _, b in net.layers():
            b.copy_(torch.linspace(-0.6, 0.8, b.shape[-1], dtype=dtype))
    return net


def _points(n: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return (torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0], dtype=torch.float64)
            + torch.tensor([0.05, -1.0], dtype=torch.float64)).to(dtype)


def _plain(net: MLP, case: str):
    """The same function written out without fastpinn: transforms around a torch.nn.Sequential."""
    kw = CASES[case]
    layers = [(w.detach().clone(), b.detach().clone()) for w, b in net.layers()]

    def f(x):
        h = kw["input_transform"](x) if "input_transform" in kw else x * net.input_scale + net.input_shift
        for i, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if i < len(layers) - 1:
                h = torch.tanh(h)
        return kw["output_transform"](x, h) if "output_transform" in kw else h

    return f


def _rel(got, ref, requests) -> float:
    return max(float((got[r] - ref[r]).detach().abs().max()) / max(1.0, float(ref[r].detach().abs().max()))
               for r in requests)


@pytest.mark.parametrize("case", CASES)
def test_every_method_matches_autograd_of_the_plain_composition(case):
    net = _net(case)
    x = _points(7)
    ref = derivatives(_plain(net, case), x, COORDS, UP_TO_4, method="autograd")
    assert _rel(derivatives(net, x, COORDS, UP_TO_2, method="jet"), ref, UP_TO_2) <= 1e-11
    for method in ("func", "autograd"):
        assert _rel(derivatives(net, x, COORDS, UP_TO_4, method=method), ref, UP_TO_4) <= 1e-11


@pytest.mark.parametrize("case", ["polar+hard", "periodic+general"])
@pytest.mark.parametrize("activation", ["sin", "gelu"])
@pytest.mark.parametrize("shared", [True, False])
def test_ensembles_and_other_activations(case, activation, shared):
    net = _net(case, activation=activation, ensemble=2)
    x = _points(6) if shared else torch.stack([_points(6), _points(6).flip(0)])
    ref = derivatives(net, x, COORDS, UP_TO_2, method="autograd")
    assert ref["u"].shape == (2, 6, 2)
    assert _rel(derivatives(net, x, COORDS, UP_TO_2, method="jet"), ref, UP_TO_2) <= 1e-11
    assert _rel(derivatives(net, x, COORDS, UP_TO_2, method="func"), ref, UP_TO_2) <= 1e-11
    for s in range(2):  # member s is the single network with its parameters
        single = _net(case, activation=activation)
        with torch.no_grad():
            single.theta.copy_(net.theta[s])
        xs = x if shared else x[s]
        torch.testing.assert_close(single(xs), net(x)[s], rtol=1e-14, atol=1e-14)


def test_float32_jet_matches_float64():
    net64, net32 = _net("polar+hard"), _net("polar+hard", dtype=torch.float32)
    with torch.no_grad():
        net64.theta.copy_(net32.theta.double())
    x = _points(9, torch.float32)
    ref = derivatives(net64, x.double(), COORDS, UP_TO_2, method="autograd")
    assert _rel(derivatives(net32, x, COORDS, UP_TO_2, method="jet"), ref, UP_TO_2) <= 1e-4  # float32 eps * depth


@pytest.mark.parametrize("case", ["hard", "periodic+general"])
def test_parameter_and_point_gradients_through_the_jet(case):
    net = _net(case)
    x = _points(5).requires_grad_(True)

    def grads(method):
        f = derivatives(net, x, COORDS, ["u_xx", "u_t", "u_tx"], method=method)
        loss = (f["u_xx"] - f["u_t"] * f["u_tx"]).square().sum()
        return torch.autograd.grad(loss, [net.theta, x])

    for got, ref in zip(grads("jet"), grads("autograd")):
        torch.testing.assert_close(got, ref, rtol=1e-11, atol=1e-11 * float(ref.abs().max()))


def test_hard_constraint_holds_exactly_for_any_parameters():
    net = _net("hard")
    t0 = torch.stack([torch.zeros(11, dtype=torch.float64), torch.linspace(-1, 1, 11, dtype=torch.float64)], -1)
    edges = torch.tensor([[0.3, -1.0], [0.8, 1.0]], dtype=torch.float64)
    for seed in range(3):
        with torch.no_grad():
            net.theta.copy_(torch.randn(net.n_params, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
        torch.testing.assert_close(net(t0)[:, :1], torch.sin(math.pi * t0[:, 1:]), rtol=0, atol=1e-15)
        torch.testing.assert_close(net(edges), HARD.g(edges).expand(2, 2), rtol=0, atol=1e-15)
        # and its derivative along the constrained face is the prescribed one's
        f = derivatives(net, t0, COORDS, ["u_x"], method="jet")
        torch.testing.assert_close(f["u_x"][:, :1], math.pi * torch.cos(math.pi * t0[:, 1:]), rtol=0, atol=1e-13)


def test_periodic_features_make_the_network_periodic():
    net = _net("periodic")
    x = _points(8)
    shifted = x + torch.tensor([0.0, L], dtype=torch.float64)
    torch.testing.assert_close(net(shifted), net(x), rtol=1e-12, atol=1e-12)
    assert net.n_features == 3 and net.layer_shapes[0] == (5, 3)


def test_fused_refuses_transforms_and_auto_picks_autograd():
    net = _net("hard")
    reasons = applicable_methods(net, ["u_xx"], COORDS)
    assert "no input/output transforms" in reasons["fused"]
    assert reasons["jet"] is None
    # measured faster than the jet through transforms on CPU (see choose_method); beyond order 2 too
    assert choose_method(net, None, [(1, 1)]) == "autograd"
    assert choose_method(net, None, [(1, 1, 1)]) == "autograd"  # func is never the default (choose_method)
    with pytest.raises(ValueError, match="'fused' does not apply: the compiled kernel has no input/output"):
        derivatives(net, _points(3), COORDS, ["u_xx"], method="fused")


def test_bad_transforms_are_named():
    with pytest.raises(ValueError, match="input_transform must map points"):
        MLP(2, 1, 2, 4, input_transform=lambda x: x.sum())
    with pytest.raises(ValueError, match="output_transform must be None or a callable"):
        MLP(2, 1, 2, 4, output_transform=3.0)
    with pytest.raises(ValueError, match="HardConstraint needs callables"):
        HardConstraint(0.0, lambda x: x)


def test_repr_names_the_transforms():
    text = repr(_net("polar+hard"))
    assert "input_transform=polar" in text and "n_features=3" in text and "output_transform=HardConstraint(" in text


def test_hard_constrained_poisson_trains_without_a_boundary_term():
    """u'' = -pi^2 sin(pi x) on [-1, 1], u(+-1) = 0 imposed by u = (1 - x^2) N(x): the problem has only the PDE term."""
    from fastpinn.problem import Problem, pde
    from fastpinn.trainer import Trainer

    x_pde = torch.linspace(-1, 1, 33, dtype=torch.float64)[:, None]
    problem = Problem(name="hard_poisson", coords=("x",), lower=(-1.0,), upper=(1.0,),
                      terms=[pde("pde", x_pde, lambda f: f["u_xx"][..., 0] + math.pi ** 2 * torch.sin(math.pi * f.x[..., 0]),
                                 requests=("u_xx",))],
                      depth=3, width=16, epochs=300, seeds=(0,))
    net = MLP(1, 1, 3, 16, -1.0, 1.0, dtype=torch.float64,
              output_transform=HardConstraint(lambda x: torch.zeros_like(x), lambda x: 1 - x ** 2))
    trainer = Trainer(problem, fastpinn.DN(beta=0.9), network=net, backend="torch", dtype=torch.float64, lr=1e-2,
                      derivative_method="jet")
    assert trainer.derivative_methods == {"pde": "jet"}
    trainer.train(300)
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)[:, None]
    with torch.no_grad():
        u = net(x)
    assert float(u[0].abs()) == 0.0 and float(u[-1].abs()) == 0.0  # the boundary is exact, not learned
    err = float(torch.linalg.vector_norm(u[:, 0] - torch.sin(math.pi * x[:, 0])) / torch.linalg.vector_norm(torch.sin(math.pi * x[:, 0])))
    assert err < 0.05, err


@pytest.mark.slow
def test_compiled_training_of_a_transformed_network_matches_eager():
    """torch.compile of the jet through both transforms (the input features' jets run outside the graph)."""
    from fastpinn.problems import poisson1d
    from fastpinn.trainer import Trainer

    problem = poisson1d(0, n_pde=16, depth=3, width=8)
    thetas = []
    for compile in (False, True):
        net = MLP(1, 1, 3, 8, -1.0, 1.0, dtype=torch.float64, activation="silu",
                  input_transform=lambda x: torch.cat([x, torch.sin(math.pi * x)], -1),
                  output_transform=HardConstraint(lambda x: torch.zeros_like(x), lambda x: 1 - x ** 2))
        trainer = Trainer(problem, fastpinn.DN(beta=0.9), network=net, backend="torch", dtype=torch.float64,
                          compile=compile, derivative_method="jet")
        trainer.train(3)
        assert trainer.derivative_methods["pde"] == "jet" and trainer.compiled is compile
        thetas.append(net.theta.detach().clone())
    torch.testing.assert_close(thetas[1], thetas[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["hard", "periodic+general"])
def test_ntk_traces_through_transforms_agree_across_methods(case):
    """The NTK schemes' per-point parameter gradients (a batched backward) work through the transforms' jets."""
    from fastpinn.ntk import term_traces
    from fastpinn.problem import Problem, pde

    x = _points(10)
    problem = Problem(name="t", coords=COORDS, lower=(0.0, -1.0), upper=(1.0, 1.0), out_dim=2,
                      terms=[pde("pde", x, lambda f: f["u_t"][..., 0] - f["u_xx"][..., 1], requests=("u_t", "u_xx")),
                             pde("aux", x, lambda f: f["u"][..., 0] * f["u_x"][..., 1], requests=("u", "u_x"))],
                      depth=3, width=5, seeds=(0,))
    net = _net(case)
    ref = term_traces(problem.terms, net, COORDS, method="autograd")
    assert ref.shape == (1, 2) and bool((ref > 0).all())
    for method in ("jet", "func", "auto"):
        torch.testing.assert_close(term_traces(problem.terms, net, COORDS, method=method), ref, rtol=1e-11, atol=0)
