"""fastpinn.quadrature: Gauss–Legendre nodes, segment quadrature per point, and integral terms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastpinn import MLP, PINN, Problem, Trainer, initial, stack
from fastpinn.quadrature import Quadrature, gauss_legendre, integral_term, integrate, segment_nodes


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_gauss_legendre_is_exact_up_to_degree_2n_minus_1_and_not_beyond(n):
    t, w = gauss_legendre(n)
    assert t.shape == w.shape == (n,)
    for k in range(2 * n):
        exact = 2.0 / (k + 1) if k % 2 == 0 else 0.0  # int_{-1}^{1} t^k dt
        assert abs(float(np.sum(w * t ** k)) - exact) < 1e-12
    # degree 2n (even) is the first the rule misses
    assert abs(float(np.sum(w * t ** (2 * n))) - 2.0 / (2 * n + 1)) > 1e-10


def test_gauss_legendre_refuses_a_non_positive_count():
    with pytest.raises(ValueError, match="quadrature n"):
        gauss_legendre(0)


def test_segment_nodes_integrate_a_polynomial_exactly_per_point_and_keep_other_coordinates():
    # points (x, y); segments along x from a = -0.5 to each point's own x: int_a^x (s^3 + y s) ds
    x = torch.tensor([[0.3, 2.0], [1.7, -1.0], [-0.5, 0.5], [-2.0, 1.0]], dtype=torch.float64)
    sets, w = segment_nodes(x, axis=0, lower=-0.5, n=2)  # degree 3 needs n = 2
    assert len(sets) == 2 and w.shape == (4, 2)
    for s in sets:
        assert torch.equal(s[:, 1], x[:, 1])  # y kept
    values = [s[:, 0] ** 3 + s[:, 1] * s[:, 0] for s in sets]
    got = integrate(values, w)
    a, b, y = -0.5, x[:, 0], x[:, 1]
    expect = (b ** 4 - a ** 4) / 4 + y * (b ** 2 - a ** 2) / 2  # backwards for x < a: negative
    assert torch.allclose(got, expect, atol=1e-12)
    # the [N, n] form gives the same
    assert torch.allclose(integrate(torch.stack(values, -1), w), expect, atol=1e-12)


def test_segment_nodes_integrate_a_known_function_to_quadrature_accuracy():
    # int_0^x e^{t - x} cos(t) dt for x in [0, 5]: closed form (e^{-x}... ) vs 20 nodes
    x = torch.linspace(0.0, 5.0, 11, dtype=torch.float64)[:, None]
    sets, w = segment_nodes(x, 0, lower=0.0, n=20)
    got = integrate([torch.exp(s[:, 0] - x[:, 0]) * torch.cos(s[:, 0]) for s in sets], w)
    xs = x[:, 0]
    # int_0^x e^t cos t dt = (e^x (cos x + sin x) - 1) / 2
    expect = torch.exp(-xs) * (torch.exp(xs) * (torch.cos(xs) + torch.sin(xs)) - 1) / 2
    assert torch.allclose(got, expect, atol=1e-12)


def test_segment_nodes_with_tensor_bounds_and_an_ensemble():
    x = torch.rand(3, 4, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lower = torch.zeros(3, 4, dtype=torch.float64)
    sets, w = segment_nodes(x, 0, lower=lower, upper=None, n=3)
    assert sets[0].shape == (3, 4, 1) and w.shape == (3, 4, 3)
    got = integrate([s[..., 0] ** 2 for s in sets], w)
    assert torch.allclose(got, x[..., 0] ** 3 / 3, atol=1e-12)
    with pytest.raises(ValueError, match="lower must be None"):
        segment_nodes(x, 0, lower=torch.zeros(4), n=3)
    with pytest.raises(ValueError, match="axis"):
        segment_nodes(x, 1, n=3)


def test_integral_term_integrates_the_network_along_the_segment():
    # the residual's quadrature of u over [0, x] equals a fine trapezoid integral of the same network
    net = MLP(1, 1, 3, 8, [0.0], [2.0], seed=0, dtype=torch.float64)
    x = torch.linspace(0.1, 2.0, 7, dtype=torch.float64)[:, None]
    seen = {}

    def residual(f, quad):
        assert isinstance(quad, Quadrature) and len(quad.nodes) == 12
        seen["integral"] = quad.integral(lambda g: g["u"][..., 0]).detach()
        return f["u"][..., 0] - seen["integral"]

    term = integral_term("ide", x, residual, ("u",), axis=0, lower=0.0, n=12)
    r = term.residual_values(net, ("x",), method="autograd")
    assert r.shape == (7,)
    for i, xi in enumerate(x[:, 0].tolist()):
        s = torch.linspace(0.0, xi, 20001, dtype=torch.float64)[:, None]
        with torch.no_grad():
            ref = torch.trapezoid(net(s)[:, 0], s[:, 0])
        assert abs(float(seen["integral"][i]) - float(ref)) < 1e-8


def test_integral_term_mini_batches_points_with_their_nodes():
    net = MLP(1, 1, 2, 6, [0.0], [1.0], seed=1, dtype=torch.float64)
    x = torch.linspace(0.0, 1.0, 9, dtype=torch.float64)[:, None]

    def residual(f, quad):
        return quad.integral(lambda g: g["u"][..., 0])

    term = integral_term("int", x, residual, "u", axis=0, lower=0.0, n=8, batch_size=4)
    full = term.residual_values(net, ("x",), method="autograd")
    index = torch.tensor([7, 2, 5])
    part = term.residual_values(net, ("x",), index, method="autograd")
    assert torch.allclose(part, full[index], atol=1e-14)


def test_volterra_term_trains_in_a_problem():
    # a small Volterra IDE (du/dx + u = int_0^x e^{t-x} u dt, u(0) = 1): the loss falls by 10x in 150 epochs
    x = torch.linspace(0.0, 2.0, 16)[:, None]

    def residual(f, quad):
        xs = f.x[..., 0]
        return f["u_x"][..., 0] + f["u"][..., 0] - quad.integral(lambda g: torch.exp(g.x[..., 0] - xs) * g["u"][..., 0])

    problem = Problem(name="ide", coords=("x",), lower=(0.0,), upper=(2.0,),
                      terms=[integral_term("ide", x, residual, ("u", "u_x"), axis=0, lower=0.0, n=8),
                             initial("ic", torch.zeros(1, 1), 1.0)], depth=3, width=16)
    history = Trainer(problem, PINN()).train(150)
    losses = history.losses.sum(-1)[:, 0]  # [E]
    assert math.isfinite(losses[-1]) and losses[-1] < losses[0] / 10


def test_integral_term_in_a_stacked_ensemble_equals_its_members():
    # stack() pairs points, nodes and weights per member: member s's residual equals its single problem's
    def problem(seed):
        x = torch.rand(6, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

        def residual(f, quad):
            return f["u_x"][..., 0] - quad.integral(lambda g: g.x[..., 0] * g["u"][..., 0])

        return Problem(name="ide", coords=("x",), lower=(0.0,), upper=(1.0,), seeds=(seed,), depth=2, width=5,
                       terms=[integral_term("ide", x, residual, ("u", "u_x"), axis=0, lower=0.0, n=4)])

    singles = [problem(s) for s in (3, 4)]
    ens = stack(singles)
    assert ens.terms[0].targets.shape == (2, 6, 4)
    net = ens.network(dtype=torch.float64)
    r = ens.terms[0].residual_values(net, ("x",), method="autograd")
    assert r.shape == (2, 6)
    for s, single in enumerate(singles):  # member s is seeded like the single network of seed s
        one = single.terms[0].residual_values(single.network(dtype=torch.float64), ("x",), method="autograd")
        assert torch.allclose(r[s], one, atol=1e-12)


@pytest.mark.parametrize("method", ["jet", "func"])
def test_integral_term_gives_the_same_residual_with_every_derivative_method(method):
    net = MLP(1, 1, 3, 8, [0.0], [2.0], seed=2, dtype=torch.float64)
    x = torch.linspace(0.0, 2.0, 9, dtype=torch.float64)[:, None]

    def residual(f, quad):
        xs = f.x[..., 0]
        return f["u_x"][..., 0] - quad.integral(lambda g: torch.exp(g.x[..., 0] - xs) * g["u_x"][..., 0])

    term = integral_term("ide", x, residual, ("u", "u_x"), axis=0, lower=0.0, n=6)
    ref = term.residual_values(net, ("x",), method="autograd")
    assert torch.allclose(term.residual_values(net, ("x",), method=method), ref, atol=1e-12)
