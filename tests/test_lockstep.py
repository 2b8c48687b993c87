"""L-BFGS in seed ensembles: one optimizer per member in lock step, so a member trains as its single run.

Before, the named ``"lbfgs"`` stage was one ``torch.optim.LBFGS`` over ``theta[S, P]``: its inner products and its
line search covered all members at once, so a member's trajectory depended on the other seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn import Stage
from fastpinn.lockstep import LockstepOptimizer
from fastpinn.problems import poisson1d
from fastpinn.trainer import Trainer

F64 = torch.float64


def _trainer(seed, scheme=None, iterations=8):
    return Trainer(poisson1d(seed=seed, n_pde=48, depth=3, width=12), scheme or fastpinn.PINN(), dtype=F64,
                   stages=[Stage("adam", epochs=20, lr=3e-3), Stage("lbfgs", iterations=iterations)], eval_every=4)


@pytest.mark.parametrize("scheme", [fastpinn.PINN, lambda: fastpinn.DN(tau=2)], ids=["pinn", "dn"])
def test_each_member_equals_its_single_run(scheme):
    """float64, same points and initial weights per member: the member's L-BFGS sees exactly its own loss and
    gradient (batched evaluation of independent members), so only the batched kernels' rounding separates the
    two runs -- 1e-9 relative after 28 steps bounds it with room (a shared line search differs at 1e-2)."""
    ens = _trainer([0, 1], scheme())
    assert isinstance(ens.stages.stages[1], Stage)
    ens.train()
    assert isinstance(ens.optimizer, LockstepOptimizer)
    for s in (0, 1):
        single = _trainer(s, scheme())
        single.train()
        assert isinstance(single.optimizer, torch.optim.LBFGS)
        torch.testing.assert_close(ens.theta[s], single.theta, rtol=1e-9, atol=1e-11)


def test_a_shared_lbfgs_would_couple_the_members():
    """The reproduction of the old behaviour: one LBFGS over theta[S, P] does not give the single runs."""
    shared = Trainer(poisson1d(seed=[0, 1], n_pde=48, depth=3, width=12), fastpinn.PINN(), dtype=F64,
                     stages=[Stage("adam", epochs=20, lr=3e-3),
                             Stage(lambda p: torch.optim.LBFGS(p, max_iter=1, max_eval=25, history_size=50,
                                                               line_search_fn="strong_wolfe"), iterations=8)],
                     eval_every=4)
    shared.train()
    single = _trainer(0)
    single.train()
    assert (shared.theta[0] - single.theta).abs().max() > 1e-6


def test_resume_in_the_lockstep_stage_equals_the_uninterrupted_run(tmp_path):
    whole = _trainer([0, 1])
    whole.train()
    first = _trainer([0, 1])
    first.train(24)
    first.save_checkpoint(str(tmp_path / "c.pt"))
    second = _trainer([0, 1])
    second.load_checkpoint(str(tmp_path / "c.pt"))
    assert [m.state_dict()["state"][0]["n_iter"] for m in second.optimizer.members] == [4, 4]
    second.train()
    assert torch.equal(second.theta, whole.theta)


def test_members_taking_different_numbers_of_evaluations():
    """Quadratics of different curvature: each member's L-BFGS runs its own line search to the minimum."""
    scales = torch.tensor([[1.0], [50.0], [0.02]], dtype=F64)
    theta = torch.ones(3, 4, dtype=F64, requires_grad=True)
    opt = LockstepOptimizer([theta], lambda rows: torch.optim.LBFGS(rows, max_iter=20, line_search_fn="strong_wolfe"))

    def closure():
        theta.grad = None
        loss = (scales * (theta - 2.0) ** 2).sum(-1)
        loss.sum().backward()
        return loss.detach()

    first = opt.step(closure)
    torch.testing.assert_close(first, 4 * scales.squeeze(1))
    torch.testing.assert_close(theta.detach(), torch.full((3, 4), 2.0, dtype=F64))
    for s in range(3):  # the same as one LBFGS on the member's own loss
        alone = torch.ones(4, dtype=F64, requires_grad=True)
        single = torch.optim.LBFGS([alone], max_iter=20, line_search_fn="strong_wolfe")

        def one():
            single.zero_grad()
            loss = (scales[s] * (alone - 2.0) ** 2).sum()
            loss.backward()
            return loss
        single.step(one)
        assert opt.members[s].state_dict()["state"][0]["func_evals"] == single.state_dict()["state"][0]["func_evals"]


def test_errors_reach_the_caller():
    theta = torch.ones(2, 3, requires_grad=True)
    opt = LockstepOptimizer([theta], lambda rows: torch.optim.LBFGS(rows))
    with pytest.raises(ValueError, match=r"per-member losses \[2\]"):
        opt.step(lambda: theta.sum())

    def broken():
        raise RuntimeError("boom in the closure")
    with pytest.raises(RuntimeError, match="boom"):
        opt.step(broken)
    with pytest.raises(ValueError, match="leading ensemble dimension"):
        LockstepOptimizer([torch.ones(2, 3), torch.ones(3, 1)], lambda rows: torch.optim.LBFGS(rows))
    with pytest.raises(ValueError, match="member"):
        opt.load_state_dict({"members": []})
