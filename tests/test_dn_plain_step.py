"""A gradient-statistic scheme's step between weight updates is a PINN step (issue 20, DN/PINN target).

Measured on the Beltrami system (bench/bench_deepxde_suite.py, 6 terms, 4 on 1,000 shared points, fused,
1 thread) DN(tau=10)'s steps between updates ran at PINN's time to noise (1,500 steps interleaved one by one:
median ratio 1.007, mean 1.000). These tests pin down why: between updates the DN step dispatches exactly the
operators of a PINN step (same names, shapes and dtypes, in the same order) and, with the weights PINN uses,
gives bit-identical parameters -- so no per-step work depends on the scheme there; the bench's DN/PINN above 1
is the update steps' ``K`` backwards.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import fastpinn
from fastpinn.problems import kovasznay
from fastpinn.trainer import Trainer


def _system():
    # kovasznay: momentum x, momentum y and continuity on shared points, plus the boundary term
    return dataclasses.replace(kovasznay(0, n_pde=24, n_bc=8, depth=2, width=6), solution=None)


def _trainer(scheme) -> Trainer:
    return Trainer(_system(), scheme, eval_every=10**9, threads=None, watch=False)


class _Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        shapes = tuple((tuple(a.shape), a.dtype) for a in args if isinstance(a, torch.Tensor))
        self.ops.append((str(func), shapes))
        return func(*args, **(kwargs or {}))


def _ops_of(step) -> list[tuple]:
    with _Ops() as mode:
        step()
    return mode.ops


def test_a_step_between_updates_dispatches_the_pinn_step_operators():
    pinn, dn = _trainer(fastpinn.PINN()), _trainer(fastpinn.DN(beta=0.99, tau=10))
    assert dn.backward.shared_graph and len(dn.loss_functions.groups) < len(dn.problem.terms)
    dn.step(update=True)  # weights and G in their running state
    for _ in range(2):  # first steps create the optimizer state
        pinn.step()
        dn.step(update=False)
    passes = dn.backward_passes
    want = _ops_of(pinn.step)
    got = _ops_of(lambda: dn.step(update=False))
    assert dn.backward_passes == passes + 1
    assert len(got) == len(want) and got == want


def test_with_unit_weights_a_step_between_updates_is_bit_identical_to_pinn():
    pinn, dn = _trainer(fastpinn.PINN()), _trainer(fastpinn.DN(beta=0.99, tau=10))
    assert torch.equal(dn.weighter.lam_applied, pinn.weighter.lam_applied)  # both start at 1
    assert torch.equal(dn.theta, pinn.theta)
    for _ in range(12):
        pinn.step()
        dn.step(update=False)
    assert torch.equal(dn.theta, pinn.theta)
    assert not torch.equal(dn.theta, _trainer(fastpinn.PINN()).theta)  # it trained
