"""The fused op trained through the per-layer leaves without joining them (fastpinn.ops.mlp_jet.mlp_jet_leaves):
bit-identical to the path that joins the leaves with torch.cat and calls the op's registered autograd formula."""

from __future__ import annotations

import pytest
import torch

import fastpinn
import fastpinn.ops.mlp_jet
from fastpinn.derivatives import derivatives
from fastpinn.ops.mlp_jet import mlp_jet
from fastpinn.schemes import DN, PINN
from fastpinn.trainer import Trainer

from step_problems import PROBLEMS


def _joined(theta, leaves, x, scale, shift, sizes, dirs, pairs, first_out, activation="tanh"):
    """The path before: cat of the leaves, then the op through its registered autograd formula."""
    members = theta.shape[0] if theta.dim() == 2 else 1
    flat = torch.cat([t.reshape(members, -1) for t in leaves], dim=-1)
    return mlp_jet(flat, x, scale, shift, sizes, dirs, pairs, first_out, activation=activation)


def _joined_call(self, theta, leaves, x, scale, shift):
    """``LeafJet.__call__`` (what the fused method runs on the trainer's leaves) replaced by the joined path."""
    return _joined(theta, leaves, x, scale, shift, self.sizes, self.dirs, self.pairs, self.first_out, self.activation)


def _theta_after(make, scheme, steps, monkeypatch, joined):
    with monkeypatch.context() as m:
        if joined:
            m.setattr(fastpinn.ops.mlp_jet.LeafJet, "__call__", _joined_call)
        trainer = Trainer(make(), scheme, derivative_method="fused", eval_every=10 ** 9, threads=None, watch=False)
        trainer.train(steps)
        return trainer.theta.detach().clone()


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("scheme", [PINN, DN], ids=["PINN", "DN"])
def test_trainer_theta_bit_identical_to_the_joined_path(name, scheme, monkeypatch):
    make = PROBLEMS[name]
    fast = _theta_after(make, scheme(), 12, monkeypatch, joined=False)
    ref = _theta_after(make, scheme(), 12, monkeypatch, joined=True)
    assert torch.equal(fast, ref)


def _graph_nodes(fn) -> set:
    seen, stack = {}, [fn]
    while stack:
        fn = stack.pop()
        if fn is not None and id(fn) not in seen:
            seen[id(fn)] = type(fn).__name__
            stack.extend(f for f, _ in fn.next_functions)
    return set(seen.values())


@pytest.mark.parametrize("ensemble", [None, 2])
def test_leaf_and_point_gradients_equal_the_joined_path(ensemble, monkeypatch):
    net = fastpinn.MLP(2, 1, 3, 7, ensemble=ensemble, seed=3, dtype=torch.float64)
    wanted = ("u", "u_t", "u_x", "u_tx", "u_xx")

    def grads(joined):
        x = torch.rand(37, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64, requires_grad=True)
        leaves = net.leaves()
        for t in leaves:
            t.grad = None
        with monkeypatch.context() as m:
            if joined:
                m.setattr(fastpinn.ops.mlp_jet.LeafJet, "__call__", _joined_call)
            out = derivatives(net, x, ("t", "x"), wanted, method="fused", theta=leaves)
        assert ("_LeafJetBackward" in _graph_nodes(out["u"].grad_fn)) != joined  # the path under test ran
        loss = sum((out[r] * (k + 1)).sin().sum() for k, r in enumerate(wanted))
        loss.backward()
        return [t.grad.clone() for t in leaves] + [x.grad], [out[r].detach() for r in wanted]

    (g_fast, v_fast), (g_ref, v_ref) = grads(False), grads(True)
    assert all(torch.equal(a, b) for a, b in zip(v_fast, v_ref))
    assert all(torch.equal(a, b) for a, b in zip(g_fast, g_ref))


def test_not_the_trainers_leaves_still_join():
    """A list that is not the network's own leaves (e.g. other parameters) goes through the joined path."""
    net = fastpinn.MLP(1, 1, 3, 5, seed=0, dtype=torch.float64)
    other = [t.detach().clone().requires_grad_(True) for t in net.leaves()]
    x = torch.linspace(-1, 1, 9, dtype=torch.float64).unsqueeze(-1)
    derivatives(net, x, ("x",), "u_xx", method="fused", theta=other)["u_xx"].sum().backward()
    assert all(t.grad is not None for t in other)
    assert all(t.grad is None for t in net.leaves())


def test_double_backward_through_the_leaves_raises():
    net = fastpinn.MLP(1, 1, 3, 5, seed=0, dtype=torch.float64)
    leaves = net.leaves()
    x = torch.linspace(-1, 1, 9, dtype=torch.float64).unsqueeze(-1)
    loss = derivatives(net, x, ("x",), "u_xx", method="fused", theta=leaves)["u_xx"].pow(2).sum()
    grads = torch.autograd.grad(loss, leaves, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable once"):  # not a silently missing second derivative
        torch.autograd.grad(sum(g.sum() for g in grads), leaves, allow_unused=True)
