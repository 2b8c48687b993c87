"""Terms that share points share one evaluation (issue 20, item 2).

Terms of a problem on equal point sets (a system's momentum and continuity equations) are evaluated together:
the network and the union of their derivative requests once per step, each term's residual from those fields.
The reference is the per-term path (every term its own evaluation, as on 5838b7e), forced on a second trainer.
Tolerance as in tests/test_one_backward.py: the same numbers, summed in another order at most (1e-11 relative
on the parameters in float64; measured <= 4e-16 after 10 steps).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import fastpinn
from fastpinn.problem import Problem, dirichlet, pde, stack
from fastpinn.problems import kovasznay
from fastpinn.schemes import SCHEME_NAMES, scheme_from_name
from fastpinn.method_costs import join_pays
from fastpinn.ops.mlp_taylor import taylor_available
from fastpinn.term_losses import shared_point_groups
from fastpinn.trainer import Trainer
from beam_problem import euler_beam as shared_euler_beam

F64 = torch.float64


def _small(seed: int = 0) -> Problem:
    # no reference solution: train() would evaluate it on 101 x 101 points at its last epoch
    return dataclasses.replace(kovasznay(seed, n_pde=24, n_bc=8, depth=2, width=6), solution=None)


def _per_term(t: Trainer) -> Trainer:
    """The old path: every term evaluates the network on its own."""
    t.loss_functions.groups = [([k], None) for k in range(len(t.problem.terms))]
    t.backward.shared_graph = False
    return t


def _scheme(name: str):
    return scheme_from_name(name, **({} if name in ("pinn", "uncertainty", "gradnorm") else {"tau": 2}))


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=1e-11 * float(b.detach().abs().max()))


def test_groups_of_a_system():
    big = dataclasses.replace(kovasznay(0, n_pde=300, n_bc=8, depth=2, width=6), solution=None)
    t = Trainer(big, fastpinn.PINN(), dtype=F64, threads=None)
    assert [g for g, _ in t.loss_functions.groups] == [[0, 1, 2], [3]]  # 308 points: bc keeps its own
    assert t.backward.shared_graph
    # separate but equal tensors share; a mini-batched term, another method or attention does not
    terms = _small().terms
    x = terms[0].points[0]
    batched = pde("batched", x.clone(), lambda f: f["u"][..., 0], ("u",), batch_size=8)
    assert shared_point_groups(terms + [batched], ["jet"] * 5) == [[0, 1, 2], [3], [4]]
    assert shared_point_groups(terms, ["jet", "autograd", "jet", "jet"]) == [[0, 2], [1], [3]]
    assert shared_point_groups(terms, ["jet"] * 4, alone=[False, True, False, False]) == [[0, 2], [1], [3]]
    # nested autograd on a small problem: a term reading derivatives on other points joins (concatenated points);
    # a values-only term (bc) keeps its one forward pass unless a join rule says joining pays (auto's cost model,
    # test_values_only_term_joins_a_small_group_under_auto)
    slope = pde("slope", terms[3].points[0].clone(), lambda f: f["u_x"][..., 0], ("u_x",))
    assert shared_point_groups(terms + [slope], ["autograd"] * 5) == [[0, 1, 2, 4], [3]]
    assert shared_point_groups(terms + [slope], ["autograd"] * 5, merge_points=24) == [[0, 1, 2], [3, 4]]
    assert shared_point_groups(terms + [slope], ["jet"] * 5) == [[0, 1, 2], [3, 4]]


class Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.body(x)


def test_one_network_evaluation_per_point_set():
    """The issue's cause: 3 terms on the PDE points evaluated the network 3 times a step; now once."""
    net = Counting()
    t = Trainer(_small(), fastpinn.PINN(), network=net, dtype=F64, threads=None)
    assert [g for g, _ in t.loss_functions.groups] == [[0, 1, 2], [3]]
    t.step()
    net.calls = 0
    t.step()
    assert net.calls == 2  # 5838b7e: 4, one per term
    assert t.backward_passes == 2  # PINN: one backward a step


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_every_scheme_equals_the_per_term_path(name):
    shared = Trainer(_small(), _scheme(name), dtype=F64, backend="torch", eval_every=10**6, threads=None)
    alone = _per_term(Trainer(_small(), _scheme(name), dtype=F64, backend="torch", eval_every=10**6, threads=None))
    shared.train(6)
    alone.train(6)
    _close(shared.theta, alone.theta)
    torch.testing.assert_close(shared.weighter.lam_applied, alone.weighter.lam_applied, rtol=1e-9, atol=0)
    assert shared.backward_passes == alone.backward_passes


@pytest.mark.parametrize("step_mode", ["eager", "device"])
def test_ensemble_equals_the_per_term_path(step_mode):
    def make():
        return Trainer(stack([_small(0), _small(1)]), fastpinn.DN(tau=2), dtype=F64, backend="torch",
                       step_mode=step_mode, eval_every=10**6, threads=None)

    shared, alone = make(), _per_term(make())
    # 2 x (24 + 8) points under auto: the values-only bc joins the PDE evaluation (its own would cost more:
    # method_costs.join_pays), so the concatenated points of an ensemble are compared too
    assert [g for g, _ in shared.loss_functions.groups] == [[0, 1, 2, 3]]
    shared.train(6)
    alone.train(6)
    _close(shared.theta, alone.theta)


@pytest.mark.parametrize("method", ["autograd", "taylor"])
@pytest.mark.parametrize("name", ["pinn", "dn", "lra", "softadapt"])
def test_concatenated_points_equal_the_per_term_path(name, method):
    """An Euler-beam-like 14-point problem: a 4th-order term and a 1st-order term on the same points, shear forces
    (3rd order: nested autograd on their own too) and values at the ends: one evaluation over the concatenated
    points, by one method for all (nested autograd: the jet stops at order 2; or the Taylor-mode op, ``auto``'s
    choice where it is built)."""
    if method == "taylor" and not taylor_available():
        pytest.skip("fastpinn._C lacks mlp_taylor")
    x = torch.linspace(0.1, 0.9, 12, dtype=F64).unsqueeze(1)
    ends = torch.tensor([[0.0], [1.0]], dtype=F64)
    problem = Problem(name="beam", coords=("x",), lower=(0.0,), upper=(1.0,),
                      terms=[pde("pde", x, lambda f: f["u_xxxx"][..., 0] - 1.0, ("u_xxxx",)),
                             pde("slope", x, lambda f: f["u_x"][..., 0], ("u_x",)),
                             pde("shear", ends, lambda f: f["u_xxx"][..., 0], ("u_xxx",)),
                             dirichlet("ends", ends)], depth=2, width=8)
    shared = Trainer(problem, _scheme(name), dtype=F64, threads=None, eval_every=10**6, backend="torch",
                     derivative_method=method)
    assert set(shared.derivative_methods.values()) == {method}
    assert [g for g, _ in shared.loss_functions.groups] == [[0, 1, 2, 3]]
    alone = _per_term(Trainer(problem, _scheme(name), dtype=F64, threads=None, eval_every=10**6, backend="torch",
                              derivative_method=method))
    shared.train(6)
    alone.train(6)
    _close(shared.theta, alone.theta)


def _beam(width: int = 20) -> Problem:
    """The bench's Euler beam (tests/beam_problem.py): 4th order on 12 points, conditions at the ends."""
    return shared_euler_beam(depth=4, width=width)


def test_values_only_term_joins_a_small_group_under_auto():
    """Issue 20 item 4: on a small problem the values-only ``u0`` joins the group that reads derivatives when the
    cost model predicts one evaluation faster than two (measured: Euler beam 4.87 -> 4.40 ms a step, the tiny 1-D
    Poisson 1.22 -> 0.97; bench/results/small-problems-*.md). On the old code ``u0`` kept its own evaluation:
    [[0, 2, 3, 4], [1]]. A method given by hand, a user module (not priced) and larger problems keep the pin."""
    t = Trainer(_beam(), fastpinn.PINN(), dtype=F64, threads=None, eval_every=10**6, backend="torch")
    assert [g for g, _ in t.loss_functions.groups] == [[0, 1, 2, 3, 4]]
    # the group's method: the 4th-order term's (Taylor-mode op when built, else nested autograd)
    assert t.derivative_methods["u0"] == ("taylor" if taylor_available() else "autograd")
    by_hand = Trainer(_beam(), fastpinn.PINN(), dtype=F64, threads=None, eval_every=10**6, backend="torch",
                      derivative_method="autograd")
    assert [g for g, _ in by_hand.loss_functions.groups] == [[0, 2, 3, 4], [1]]
    alone = _per_term(Trainer(_beam(), fastpinn.PINN(), dtype=F64, threads=None, eval_every=10**6, backend="torch"))
    t.train(6)
    alone.train(6)
    _close(t.theta, alone.theta)
    # the cost model decides, not the method: a fused 2nd-order group takes 2 end points ...
    assert join_pays("fused", 2, 50, 16, "fused", 2)
    assert join_pays("autograd", 4, 20, 13, "fused", 1)
    # ... but 128 values on a 4th-order chain over 100 points at width 150 cost more than their own forward
    assert not join_pays("autograd", 4, 150, 100, "autograd", 128)
    assert not join_pays("jet", 4, 20, 13, "fused", 1)  # a method the table does not price: never
