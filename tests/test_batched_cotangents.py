"""Batched cotangents (issue 20, DN/PINN on systems with shared points): on an update step the per-term gradients
of terms that read one fused evaluation come from one batched backward of the fused op
(``fastpinn::mlp_jet_backward_batched``, :mod:`fastpinn.ops.cotangents`) instead of one op backward per term.

* the batched C++ op equals the single op per cotangent bit for bit and the pure-PyTorch twin
  (``fastpinn.jets.jet_mlp`` differentiated by autograd) to rounding, on odd shapes, every activation, both
  dtypes, ensembles, recompute and tape;
* ``WeightedBackward``'s ``G`` with batching equals the per-term loop (``batch_cotangents=False``) on a system
  whose terms share their points and on the paper's Burgers (disjoint points), ensembles included;
* batching is really used on shared terms: one batched op call per update step, no single op backward of the
  shared evaluation.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import fastpinn
from fastpinn.jets import jet_mlp
from fastpinn.network import MLP
from fastpinn.ops import _ext
from fastpinn.ops.cotangents import batched_cotangents, has_batched_kernel
from fastpinn.ops.mlp_jet import JET_ACTIVATIONS, TILE, JetPlan
from fastpinn.problem import stack
from fastpinn.problems import kovasznay, paper
from fastpinn.trainer import Trainer

DTYPES = [torch.float64, torch.float32]
IDS = ["f64", "f32"]


@pytest.fixture(autouse=True, scope="module")
def _extension():
    _ext.load()
    assert has_batched_kernel(), "the loaded fastpinn._C lacks mlp_jet_backward_batched: rebuild the extension"


# ------------------------------------------------------------------------------------------- the C++ op
def _case(dtype, activation="tanh", sizes=(3, 7, 7, 2), members=None, own_x=False, n=2 * TILE + 5, seed=0):
    d, out = sizes[0], sizes[-1]
    net = MLP(d, out, len(sizes) - 1, sizes[1], ensemble=members, seed=seed, dtype=dtype, activation=activation,
              lower=[-1.0 + 0.5 * i for i in range(d)], upper=[1.0 + i for i in range(d)])
    wanted = [(), (0,), (2,), (0, 0), (1, 2)]
    plan = JetPlan(wanted)
    gen = torch.Generator().manual_seed(seed + 1)
    lead = (members,) if own_x else ()
    x = (torch.rand(*lead, n, d, generator=gen, dtype=torch.float64) * 2.5 - 0.5).to(dtype)
    return net, plan, x, list(sizes)


def _op_call(net, plan, x, sizes, activation, grads, tape=None):
    theta = net.theta.detach()
    theta = theta if theta.dim() == 2 else theta.unsqueeze(0)
    pairs = [p for pair in plan.pairs for p in pair]
    args = (theta, x, net.input_scale, net.input_shift, sizes, plan.dirs, pairs, plan.first_out)
    if tape is None:
        tape = torch.empty(0, dtype=theta.dtype)
    single = torch.stack([torch.ops.fastpinn.mlp_jet_backward.default(g, *args[:4], tape, *args[4:], False, activation)[0]
                          for g in grads])
    batched = torch.ops.fastpinn.mlp_jet_backward_batched.default(grads, *args[:4], tape, *args[4:], activation)
    return single, batched


def _oracle(net, plan, x, grads):
    """grad_theta of sum(g_k * fields) by autograd through the pure-PyTorch jets, [K, S, P]."""
    theta = net.theta.detach().clone().requires_grad_(True)
    wanted = [()] + plan.first + plan.second  # the fused op's field order
    jets = jet_mlp(net, theta, x, wanted)
    out = []
    for g in grads:  # g[S, C, N, out]
        total = sum((jets[w] * (g[:, c] if theta.dim() == 2 else g[0, c])).sum() for c, w in enumerate(wanted))
        (gt,) = torch.autograd.grad(total, theta, retain_graph=True)
        out.append(gt if theta.dim() == 2 else gt.unsqueeze(0))
    return torch.stack(out)


def _grads(K, members, plan, n, out, dtype, seed=3):
    gen = torch.Generator().manual_seed(seed)
    C = 1 + len(plan.first) + len(plan.second)
    return torch.randn(K, members, C, n, out, generator=gen, dtype=torch.float64).to(dtype)


def _check(net, plan, x, sizes, activation, K, dtype, store=False):
    S = 1 if net.ensemble is None else net.ensemble
    grads = _grads(K, S, plan, x.shape[-2], sizes[-1], dtype)
    tape = None
    if store:
        theta = net.theta.detach()
        theta = theta if theta.dim() == 2 else theta.unsqueeze(0)
        pairs = [p for pair in plan.pairs for p in pair]
        _, tape = torch.ops.fastpinn.mlp_jet_forward.default(theta, x, net.input_scale, net.input_shift, sizes,
                                                             plan.dirs, pairs, plan.first_out, True,
                                                             activation)
    single, batched = _op_call(net, plan, x, sizes, activation, grads, tape)
    assert batched.shape == (K, S, net.theta.shape[-1])
    assert torch.equal(batched, single)  # each stream is the single call's arithmetic
    want = _oracle(net, plan, x, grads)
    # float64: the kernels and the twin round differently (summation order), ~1e-15 relative per op over a few
    # layers; float32: the same at ~6e-8 per op, and the activations' own few-ulp approximations
    rtol, atol = (1e-10, 1e-12) if dtype == torch.float64 else (2e-4, 2e-5)
    scale = want.abs().amax()
    torch.testing.assert_close(batched / scale, want / scale, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("activation", list(JET_ACTIVATIONS))
@pytest.mark.parametrize("K", [1, 2, 5])
def test_batched_op_equals_single_calls_and_the_twin(dtype, activation, K):
    net, plan, x, sizes = _case(dtype, activation, sizes=(3, 7, 7, 2))
    _check(net, plan, x, sizes, activation, K, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("own_x", [False, True], ids=["shared-x", "own-x"])
def test_batched_op_ensemble(dtype, own_x):
    net, plan, x, sizes = _case(dtype, "tanh", sizes=(3, 5, 5, 5, 3), members=3, own_x=own_x, n=TILE - 3)
    _check(net, plan, x, sizes, "tanh", 2, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_batched_op_wide_layers_and_tape(dtype):
    # width 150: the row-padded weight-gradient path (the SIMD accumulators do not fit), and the stored tape
    net, plan, x, sizes = _case(dtype, "silu", sizes=(3, 150, 150, 1), n=TILE + 1)
    _check(net, plan, x, sizes, "silu", 3, dtype)
    _check(net, plan, x, sizes, "silu", 2, dtype, store=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_batched_op_opcheck(dtype):
    net, plan, x, sizes = _case(dtype, "sin", sizes=(3, 5, 5, 2), members=2, n=TILE + 2)
    grads = _grads(2, 2, plan, x.shape[-2], sizes[-1], dtype)
    pairs = [p for pair in plan.pairs for p in pair]
    torch.library.opcheck(torch.ops.fastpinn.mlp_jet_backward_batched.default,
                          (grads, net.theta.detach(), x, net.input_scale, net.input_shift, torch.empty(0, dtype=dtype),
                           sizes, plan.dirs, pairs, plan.first_out, "sin"))


def test_batched_op_rejects_a_bad_cotangent_shape():
    net, plan, x, sizes = _case(torch.float64)
    grads = _grads(2, 1, plan, x.shape[-2], sizes[-1], torch.float64)
    with pytest.raises(RuntimeError, match="grad_fields must be"):
        _op_call(net, plan, x, sizes, "tanh", grads[:, :, :, :-1])


# ------------------------------------------------------------------------------------ WeightedBackward
def _system():
    # kovasznay: momentum x, momentum y and continuity on shared points, plus the boundary term
    return dataclasses.replace(kovasznay(0, n_pde=2 * TILE + 7, n_bc=9, depth=3, width=7), solution=None)


def _trainer(problem, dtype, scheme=None):
    return Trainer(problem, scheme or fastpinn.DN(beta=0.9, tau=3), dtype=dtype, derivative_method="fused",
                   eval_every=10**9, threads=None, watch=False)


def _G_both(trainer):
    wb = trainer.backward
    out = []
    for flag in (False, True):
        wb.batch_cotangents = flag
        out.append(wb.term_gradients(trainer.term_losses(None)).clone())
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_G_batched_equals_the_per_term_loop_on_shared_terms(dtype):
    trainer = _trainer(_system(), dtype)
    assert trainer.backward.shared_graph
    trainer.step()  # off the initial point
    loop, batched = _G_both(trainer)
    assert loop.abs().amax(-1).min() > 0  # every term has a gradient
    # each term's row is the fused op's gradient (bit-identical streams) plus its other contributions in the
    # same order: equal; the tolerance only allows for a different order of additions within a row
    rtol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(batched, loop, rtol=rtol, atol=rtol * float(loop.abs().max()))


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_G_batched_equals_the_per_term_loop_on_burgers_and_ensembles(dtype):
    problem = paper.burgers([0, 1], n_pde=TILE + 3, n_ic=5, n_bc=6, depth=3, width=6)  # disjoint points, S = 2
    trainer = _trainer(problem, dtype)
    trainer.step()
    loop, batched = _G_both(trainer)
    assert loop.shape[:2] == (2, 3)
    torch.testing.assert_close(batched, loop, rtol=0, atol=0)  # no shared evaluation: nothing reordered


def test_G_batched_equals_the_per_term_loop_on_a_shared_ensemble():
    problem = stack([_system(), dataclasses.replace(kovasznay(1, n_pde=2 * TILE + 7, n_bc=9, depth=3, width=7),
                                                    solution=None)])  # S = 2, points [S, N, d]
    trainer = _trainer(problem, torch.float64)
    assert trainer.backward.shared_graph and trainer.backward.members == 2
    trainer.step()
    loop, batched = _G_both(trainer)
    assert trainer.backward.batched_backwards >= 1
    torch.testing.assert_close(batched, loop, rtol=1e-12, atol=1e-12 * float(loop.abs().max()))


def test_training_with_batching_follows_the_loop():
    runs = []
    for flag in (False, True):
        trainer = _trainer(_system(), torch.float64, fastpinn.DN(beta=0.9, tau=2))
        trainer.backward.batch_cotangents = flag
        for _ in range(5):
            trainer.step()
        runs.append((trainer.net.theta.detach().clone(), trainer.backward.weights().clone()))
    torch.testing.assert_close(runs[1][0], runs[0][0], rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(runs[1][1], runs[0][1], rtol=1e-12, atol=1e-13)


def test_shared_terms_use_one_batched_backward(monkeypatch):
    """Fails if the update step silently falls back to one op backward per term on the shared evaluation."""
    trainer = _trainer(_system(), torch.float64, fastpinn.DN(beta=0.9, tau=1))
    wb = trainer.backward
    groups = trainer.loss_functions.groups
    n_shared = sum(1 for _, fn in groups if fn is not None)  # evaluations read by several terms
    n_alone = len(groups) - n_shared
    assert n_shared >= 1
    calls = []
    single = torch.ops.fastpinn.mlp_jet_backward.default

    class Counting:  # _LeafJet looks the overload up on every call
        def __call__(self, grad, *args):
            calls.append(grad.shape[-2])
            return single(grad, *args)

    monkeypatch.setattr(torch.ops.fastpinn.mlp_jet_backward, "default", Counting())
    passes, batched = wb.backward_passes, wb.batched_backwards
    trainer.step()
    K = len(trainer.problem.terms)
    assert wb.backward_passes - passes == K  # one autograd walk per term, as documented
    assert wb.batched_backwards - batched == n_shared
    assert len(calls) == n_alone  # the single backward ran only for evaluations of one term
    wb.batch_cotangents = False  # the loop: the shared evaluation's backward once per term
    calls.clear()
    trainer.step()
    assert len(calls) == K
    assert wb.batched_backwards - batched == n_shared


def test_batches_do_not_nest():
    with batched_cotangents():
        with pytest.raises(RuntimeError, match="do not nest"):
            with batched_cotangents():
                pass
