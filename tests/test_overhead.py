"""A small problem's step (issue 20, item 4): the fixed costs per step that bound it, counted.

DeepXDE's Euler beam (10 + 2 points, 4th order) took 6.0 ms a step on 5838b7e against DeepXDE's 3.7: every term
evaluated the network and its own chain of nested ``autograd.grad`` calls. Now the terms that read derivatives
through nested autograd share one evaluation over their concatenated points (a values-only term keeps its one
forward pass), so the chains are paid once a step.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fastpinn
from fastpinn.derivatives import parse_request
from fastpinn.problem import Problem
from fastpinn.trainer import Trainer
from beam_problem import euler_beam as shared_euler_beam

F64 = torch.float64


class Counting(nn.Module):
    """1-16-16-1 tanh network counting its forward calls and the autograd.grad calls made through it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.body(x)


def euler_beam() -> Problem:
    """DeepXDE's cantilever (tests/beam_problem.py), 10 + 2 points, 3 hidden layers of 16."""
    return shared_euler_beam(depth=3, width=16)


@pytest.mark.parametrize("scheme", ["pinn", "dn"])
def test_euler_beam_evaluates_the_network_twice_a_step(scheme):
    net = Counting()
    t = Trainer(euler_beam(), fastpinn.PINN() if scheme == "pinn" else fastpinn.DN(tau=2), network=net, dtype=F64,
                threads=None, eval_every=10**6)
    assert [g for g, _ in t.loss_functions.groups] == [[0, 2, 3, 4], [1]]  # u0 alone: values only
    t.step()
    net.calls = 0
    grads = []
    original = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        grads.append(1)
        return original(*args, **kwargs)

    torch.autograd.grad = counting_grad
    try:
        t.step()
    finally:
        torch.autograd.grad = original
    assert net.calls == 2  # 5838b7e: 5, one per term
    assert len(grads) == 4  # one chain u_x, u_xx, u_xxx, u_xxxx (5838b7e: 1 + 2 + 3 + 4 = 10)


def test_cached_request_parsing_keeps_its_answers_and_errors():
    assert parse_request("u_xt", ("t", "x")) == (0, 1)
    assert parse_request("u_xt", ("t", "x")) == parse_request("u_tx", ("t", "x")) == (0, 1)  # from the cache
    assert parse_request(["x", "t"], ("t", "x")) == (0, 1)  # an unhashable spelling still parses
    with pytest.raises(ValueError, match="unknown coordinate"):
        parse_request("u_y", ("t", "x"))
    with pytest.raises(ValueError, match="unknown coordinate"):
        parse_request("u_y", ("t", "x"))  # a refused spelling is not cached
