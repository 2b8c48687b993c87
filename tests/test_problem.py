"""Problems, terms and samplers."""

from __future__ import annotations

import math

import pytest
import torch

from fastpinn import problems, sampling
from fastpinn.problem import Problem, Term, dirichlet, pde, periodic, stack


def test_burgers_paper_protocol():
    p = problems.burgers(0)
    assert p.coords == ("t", "x") and p.lower == (0.0, -1.0) and p.upper == (1.0, 1.0)
    assert [t.name for t in p.terms] == ["pde", "ic", "bc"]
    assert [t.n_points for t in p.terms] == [10_000, 100, 200]
    assert p.epochs == 30_000 and p.network().n_params == 3021
    ic, bc = p.terms[1].points[0], p.terms[2].points[0]
    assert bool((ic[:, 0] == 0).all())
    assert sorted(set(bc[:, 1].tolist())) == [-1.0, 1.0] and int((bc[:, 1] == -1).sum()) == 100
    torch.testing.assert_close(p.terms[1].targets[:, 0], -torch.sin(math.pi * ic[:, 1]))
    x = p.terms[0].points[0]
    assert bool(((x >= torch.tensor(p.lower)) & (x <= torch.tensor(p.upper))).all())


def test_poisson_paper_protocol():
    p = problems.poisson(1)
    assert p.lower == (0.0, 0.0) and p.upper == (1.0, 1.0)
    assert [t.n_points for t in p.terms] == [2_500, 400]
    bc = p.terms[1].points[0]
    on_edge = (bc[:, 0] == 0) | (bc[:, 0] == 1) | (bc[:, 1] == 0) | (bc[:, 1] == 1)
    assert bool(on_edge.all())
    w = 4 * math.pi
    torch.testing.assert_close(p.terms[1].targets[:, 0], torch.cos(w * bc[:, 0]) * torch.sin(w * bc[:, 1]))
    assert p.network().depth == 5 and p.network().width == 50


def test_allen_cahn_paper_protocol():
    p = problems.allen_cahn(0)
    assert [t.name for t in p.terms] == ["pde", "ic", "bc_u", "bc_ux"]
    assert p.adaptive == (False, True, False, False)
    assert p.terms[0].batch_size == 4096 and p.terms[0].n_batches == 5
    lo, hi = p.terms[2].points
    assert bool((lo[:, 1] == -1).all()) and bool((hi[:, 1] == 1).all())
    torch.testing.assert_close(lo[:, 0], hi[:, 0])
    assert p.epochs == 50_000


def test_points_depend_on_seed_only():
    a, b, c = problems.poisson(3), problems.poisson(3), problems.poisson(4)
    assert torch.equal(a.terms[0].points[0], b.terms[0].points[0])
    assert not torch.equal(a.terms[0].points[0], c.terms[0].points[0])


def test_stack_builds_an_ensemble_of_the_single_problems():
    ens = problems.burgers([2, 5], n_pde=30)
    assert ens.ensemble == 2 and ens.seeds == (2, 5)
    assert ens.terms[0].points[0].shape == (2, 30, 2)
    single = problems.burgers(5, n_pde=30)
    assert torch.equal(ens.terms[0].points[0][1], single.terms[0].points[0])
    assert torch.equal(ens.terms[1].targets[1], single.terms[1].targets)
    assert ens.network().ensemble == 2


def test_latin_hypercube_stratifies_every_coordinate():
    gen = torch.Generator().manual_seed(0)
    x = sampling.latin_hypercube(50, [0.0, -1.0], [1.0, 1.0], gen)
    for d, (lo, hi) in enumerate([(0.0, 1.0), (-1.0, 1.0)]):
        bins = torch.floor((x[:, d] - lo) / (hi - lo) * 50).long()
        assert sorted(bins.tolist()) == list(range(50))


def test_custom_problem_in_a_few_lines():
    gen = torch.Generator().manual_seed(0)
    x = sampling.uniform(20, [0.0], [1.0], gen)
    prob = Problem(name="decay", coords=("x",), lower=(0.0,), upper=(1.0,),
                   terms=[pde("pde", x, lambda f: f["u_x"][..., 0] + f["u"][..., 0], ("u", "u_x")),
                          dirichlet("bc", torch.zeros(1, 1, dtype=torch.float64), 1.0)],
                   depth=2, width=8)
    assert prob.term_names == ["pde", "bc"]


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: problems.burgers(0, n_pde=0), "n_pde"),
        (lambda: problems.get("heat"), "problem"),
        (lambda: sampling.sample("sobol", 3, [0.0], [1.0], torch.Generator()), "sampler"),
        (lambda: dirichlet("bc", torch.zeros(3, 1), torch.zeros(4)), "value"),
        (lambda: periodic("p", torch.zeros(3, 2), torch.zeros(4, 2)), "same shape"),
        (lambda: Problem("x", ("x", "x"), (0.0, 0.0), (1.0, 1.0), []), "coords"),
        (lambda: stack([]), "at least one"),
    ],
)
def test_bad_problem_input(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_reference_returns_points_in_coords_order_and_values():
    X, U = problems.poisson(0).reference()
    assert X.shape[1] == 2 and U.shape == (X.shape[0],)
    w = 4 * math.pi
    import numpy as np

    np.testing.assert_allclose(U, np.cos(w * X[:, 0]) * np.sin(w * X[:, 1]), rtol=0, atol=1e-12)
    Xb, Ub = problems.burgers(0).reference()
    assert Xb[:, 0].min() == 0.0 and Xb[:, 0].max() == 1.0  # t from 0 to 1 inclusive
    np.testing.assert_allclose(Ub[Xb[:, 0] == 0], -np.sin(np.pi * Xb[Xb[:, 0] == 0, 1]), atol=1e-12)


def test_targets_shaped_n_are_refused_with_the_fix_named():
    """Issue 17: a ``[N]`` target failed later, in the residual's trial evaluation, with a message that blamed
    the residual. Targets are indexed with the points along dim -2, so they must be ``[N, k]``."""
    x = torch.linspace(-1, 1, 7)[:, None]
    with pytest.raises(ValueError, match=r"term 'data': targets must have shape \[N, k\].*got shape \(7,\).*"
                                         r"targets\[:, None\]"):
        Term("data", (x,), lambda f, tg: f["u"] - tg, ("u",), targets=torch.sin(x[:, 0]))
    with pytest.raises(ValueError, match=r"N = 7.*got shape \(5, 1\)"):
        Term("data", (x,), lambda f, tg: f["u"] - tg[..., 0], ("u",), targets=torch.zeros(5, 1))
    ok = Term("data", (x,), lambda f, tg: f["u"] - tg[..., 0], ("u",), targets=torch.sin(x))
    assert ok.targets.shape == (7, 1)
