"""The per-step forward path planned once (fastpinn.derivatives.PreparedDerivatives, fastpinn.jets.FusedJet,
fastpinn.ops.mlp_jet.LeafJet): the same floats as evaluating through ``derivatives()`` per call with the fused
op's fields taken apart by one select per channel (the path before), and fresh points after resampling."""

from __future__ import annotations

import pytest
import torch

import fastpinn
from fastpinn.derivatives import PreparedDerivatives, derivatives
from fastpinn.jets import FusedJet
from fastpinn.ops.mlp_jet import LeafJet, mlp_jet_leaves
from fastpinn.schemes import DN, PINN
from fastpinn.trainer import Trainer

from step_problems import PROBLEMS, tiny_poisson


def _select_unbind(self, fields, ensemble, lead):
    """The fields per channel as before: a select per channel (and the member's select and a reshape)."""
    values = {index: fields[:, k] for k, index in enumerate(self.channels)}
    if not ensemble:
        values = {index: v[0].reshape(*lead, v.shape[-1]) for index, v in values.items()}
    return values


def _select_blocks(self, theta, x, spans, leaves=None):
    """The fields per point set as before: the whole fields per channel, then a narrow per set."""
    values = _select_unbind(self, self.fields(theta, x, leaves), theta.dim() == 2, x.shape[:-1])
    dim = x.dim() - 2
    starts = [sum(spans[:i]) for i in range(len(spans))]
    return [{i: v.narrow(dim, lo, n) for i, v in values.items()} for lo, n in zip(starts, spans)]


def _theta_after(make, scheme, steps, monkeypatch, reference):
    with monkeypatch.context() as m:
        if reference:
            m.setattr(FusedJet, "_unbind", _select_unbind)
            m.setattr(FusedJet, "blocks", _select_blocks)
        trainer = Trainer(make(), scheme, eval_every=10 ** 9, threads=None, watch=False)
        if reference:
            trainer.loss_functions.prepared = False
            trainer.step_runner.build(False)
        trainer.train(steps)
        return trainer


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("scheme", [PINN, lambda: DN(beta=0.99, tau=3)], ids=["PINN", "DN"])
def test_trainer_theta_bit_identical_to_the_per_call_path(name, scheme, monkeypatch):
    make = PROBLEMS[name]
    fast = _theta_after(make, scheme(), 12, monkeypatch, reference=False)
    ref = _theta_after(make, scheme(), 12, monkeypatch, reference=True)
    if name == "tiny_poisson":  # the case under test: both terms in one fused evaluation over 18 points
        assert [g for g, fn in fast.loss_functions.groups if fn is not None] == [[0, 1]]
        assert fast.derivative_methods == {"pde": "fused", "bc": "fused"}
    assert torch.equal(fast.theta, ref.theta)
    assert torch.equal(fast.backward.losses, ref.backward.losses)


def test_prepared_equals_derivatives_per_method_and_per_point_set():
    net = fastpinn.MLP(2, 2, 3, 6, seed=1, dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    parts = [torch.rand(n, 2, generator=g, dtype=torch.float64) for n in (5, 3, 4)]
    x = torch.cat(parts)
    requests = ("u", "u_x", "u_tx", "u_tt")
    for method in ("fused", "jet", "autograd", "auto"):
        prepared = PreparedDerivatives(net, ("t", "x"), requests, method)
        for theta in (None, net.leaves(), net.leaves()):  # the same list twice: its check is remembered
            whole = derivatives(net, x, ("t", "x"), requests, method=method, theta=theta)
            got = prepared(x, theta)
            assert all(torch.equal(got[r], whole[r]) for r in requests)
            lo = 0
            for part, f in zip(parts, prepared.blocks(x, theta, parts)):
                assert f.x is part
                assert all(torch.equal(f[r], whole[r][lo:lo + len(part)]) for r in requests)
                lo += len(part)
    with pytest.raises(ValueError, match="x must have shape"):
        PreparedDerivatives(net, ("t", "x"), requests, "fused")(x[:, :1], net.leaves())


def test_leaf_jet_follows_theta_and_its_in_place_updates():
    """LeafJet keeps theta's [S, P] view between calls: it must see in-place steps and a different theta."""
    net = fastpinn.MLP(1, 1, 3, 5, seed=0, dtype=torch.float64)
    x = torch.linspace(-1, 1, 7, dtype=torch.float64).unsqueeze(-1)
    sizes, args = [1, 5, 5, 1], ([0], [(0, 0)], [0])
    jet = LeafJet(sizes, *args)
    leaves = net.leaves()

    def fresh():
        return mlp_jet_leaves(net.theta, leaves, x, net.input_scale, net.input_shift, sizes, *args)

    assert torch.equal(jet(net.theta, leaves, x, net.input_scale, net.input_shift), fresh())
    with torch.no_grad():
        net.theta.mul_(0.5)  # an optimizer step
    assert torch.equal(jet(net.theta, leaves, x, net.input_scale, net.input_shift), fresh())
    other = fastpinn.MLP(1, 1, 3, 5, seed=7, dtype=torch.float64)
    got = jet(other.theta, other.leaves(), x, other.input_scale, other.input_shift)
    want = mlp_jet_leaves(other.theta, other.leaves(), x, other.input_scale, other.input_shift, sizes, *args)
    assert torch.equal(got, want)
    assert not torch.equal(got, fresh())


@pytest.mark.parametrize("kind", ["periodic", "rar"])
def test_a_resampled_term_is_evaluated_on_its_new_points(kind):
    """The tiny Poisson's terms share one prepared evaluation; a resampled term keeps its own, read from its
    current points every step (periodic: new points; RAR: more of them)."""
    trainer = Trainer(tiny_poisson(), PINN(), eval_every=10 ** 9, threads=None, watch=False,
                      resampling=fastpinn.Resampling(kind, every=2, term="pde", candidates=50, points=3))
    assert [g for g, _ in trainer.loss_functions.groups] == [[0], [1]]
    first = trainer.problem.terms[0].points[0].clone()
    trainer.train(5)  # resampled at epochs 2 and 4
    term = trainer.problem.terms[0]
    assert not torch.equal(term.points[0][:len(first)], first) or len(term.points[0]) > len(first)
    own = term.loss(trainer.net, trainer.problem.coords, method=trainer.derivative_methods["pde"],
                    theta=trainer.net.leaves())
    assert torch.equal(trainer.term_losses()[0].reshape(()), own.reshape(()))
