"""The public weighted backward: any model, any optimizer, the Trainer built on it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import fastpinn
from fastpinn import WeightedBackward
from fastpinn.problems import burgers, poisson1d
from fastpinn.trainer import Trainer, fresh_optimizer_state

F64 = torch.float64


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 7), nn.Tanh(), nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 1)).to(F64)


def _terms(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    u = model(x)
    # three terms with different parameter dependence; the third ignores the output layer entirely
    return [u.pow(2).mean(), (u - 1.0).abs().mean() * 3.0, model[0].weight.pow(2).sum()]


def _reference_G(model: nn.Module, losses: list[torch.Tensor]) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for loss in losses:
        gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True, materialize_grads=True)
        rows.append(torch.cat([g.reshape(-1) for g in gs]))
    return torch.stack(rows)


def _flat_grad(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.requires_grad])


def test_rows_of_G_and_grad_equal_per_term_autograd():
    model = _model()
    x = torch.randn(11, 2, dtype=F64)
    wb = WeightedBackward(model, fastpinn.DN(beta=0.5, tau=1), terms=["a", "b", "c"])
    lam = wb(_terms(model, x))
    want = _reference_G(model, _terms(model, x))
    torch.testing.assert_close(wb.G[0], want, rtol=0, atol=1e-15)
    # the third term does not depend on the last layers: exact zeros there, not an error
    n_first = 2 * 7 + 7
    assert bool((wb.G[0, 2, n_first:] == 0).all()) and bool((wb.G[0, 2, :14] != 0).any())
    torch.testing.assert_close(_flat_grad(model), lam @ want, rtol=1e-13, atol=1e-15)
    # the weights are the DN formula with beta = 0.5 from lambda = 1
    norms = want.norm(dim=1)
    expect = 0.5 + 0.5 * norms[0] / norms[1:]
    torch.testing.assert_close(lam[1:], expect, rtol=1e-13, atol=0)
    assert lam[0] == 1.0 and wb.backward_passes == 3


def test_frozen_parameters_are_excluded_and_left_alone():
    model = _model()
    model[2].weight.requires_grad_(False)
    x = torch.randn(5, 2, dtype=F64)
    wb = WeightedBackward(model, fastpinn.DN(tau=1), terms=3)
    wb(_terms(model, x))
    assert wb.rows.n_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert model[2].weight.grad is None
    torch.testing.assert_close(wb.G[0], _reference_G(model, _terms(model, x)), rtol=0, atol=1e-15)


def test_accumulate_adds_to_existing_gradients_like_backward():
    model = _model()
    x = torch.randn(6, 2, dtype=F64)
    extra = sum(p.sum() for p in model.parameters())
    extra.backward()
    before = _flat_grad(model).clone()
    wb = WeightedBackward(model, fastpinn.PINN(weights=[1.0, 0.5, 2.0]), terms=3)
    wb(_terms(model, x), accumulate=True)
    want = before + torch.tensor([1.0, 0.5, 2.0], dtype=F64) @ _reference_G(model, _terms(model, x))
    torch.testing.assert_close(_flat_grad(model), want, rtol=1e-13, atol=1e-15)
    assert wb.backward_passes == 1  # a fixed-weight scheme needs one backward of the weighted sum
    wb(_terms(model, x))  # replace, not add
    torch.testing.assert_close(_flat_grad(model), want - before, rtol=1e-13, atol=1e-14)


def test_schedule_counts_calls_and_state_dict_continues_bit_identically():
    def run(split: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model = _model(1)
        x = torch.randn(9, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        wb = WeightedBackward(model, fastpinn.DN(beta=0.9, tau=3, bias_correction=True), terms=3)
        seen = []
        for i in range(10):
            if split and i == 5:  # a fresh object and optimizer from the checkpointed state
                state, ostate = wb.state_dict(), opt.state_dict()
                opt = torch.optim.Adam(model.parameters(), lr=1e-2)
                opt.load_state_dict(ostate)
                wb = WeightedBackward(model, fastpinn.DN(beta=0.9, tau=3, bias_correction=True), terms=3)
                wb.load_state_dict(state)
            seen.append(wb(_terms(model, x)).clone())
            opt.step()
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), seen

    theta_a, lam_a = run(False)
    theta_b, lam_b = run(True)
    assert torch.equal(theta_a, theta_b)
    assert all(torch.equal(a, b) for a, b in zip(lam_a, lam_b))
    # updates at calls 0, 3, 6, 9 only
    changed = [i for i in range(1, 10) if not torch.equal(lam_a[i], lam_a[i - 1])]
    assert changed == [3, 6, 9]


def test_lbfgs_closure_with_update_forced_once_per_step():
    model = _model(2)
    x = torch.linspace(-1, 1, 16, dtype=F64).reshape(8, 2)
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
    wb = WeightedBackward(model, fastpinn.DN(beta=0.5, tau=1), terms=3)
    first_loss = None
    for step in range(4):
        calls = [0]

        def closure():
            opt.zero_grad()
            wb(_terms(model, x), update=calls[0] == 0)  # update on the first evaluation of each step only
            calls[0] += 1
            return wb.weighted_loss.sum()

        loss = opt.step(closure)
        first_loss = float(loss) if first_loss is None else first_loss
    assert int(wb.weighter.n_updates[0]) == 4
    assert float(wb.weighted_loss.sum()) < first_loss


def test_torch_compiled_model():
    model = _model(3)
    compiled = torch.compile(model, backend="aot_eager")
    x = torch.randn(7, 2, dtype=F64)
    wb = WeightedBackward(model, fastpinn.DN(tau=1), terms=3)

    def terms(m):
        u = m(x)
        return [u.pow(2).mean(), (u - 1.0).abs().mean() * 3.0, model[0].weight.pow(2).sum()]

    wb(terms(compiled))
    torch.testing.assert_close(wb.G[0], _reference_G(model, terms(model)), rtol=1e-12, atol=1e-14)


def test_ensemble_members_get_their_own_rows():
    net = fastpinn.MLP(2, 1, 3, 6, ensemble=3, seed=0, dtype=F64)
    x = torch.rand(10, 2, dtype=F64)
    wb = WeightedBackward(net.leaves(), fastpinn.DN(tau=1), terms=["a", "b"], members=3, flat=net.theta)

    def losses(theta):
        u = net.forward_with(theta, x)  # [S, N, 1]
        return [u.pow(2).mean(dim=(1, 2)), (u - x[:, :1]).pow(2).mean(dim=(1, 2)) * 10]

    lam = wb(losses(net.leaves()))
    assert lam.shape == (3, 2)
    for s in range(3):
        single = fastpinn.MLP(2, 1, 3, 6, seed=s, dtype=F64)
        ls = [l.reshape(()) for l in losses_single(single, x)]
        want = torch.stack([torch.autograd.grad(l, single.theta, retain_graph=True)[0] for l in ls])
        torch.testing.assert_close(wb.G[s], want, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(net.theta.grad, torch.bmm(lam.unsqueeze(1), wb.G).squeeze(1), rtol=0, atol=0)


def losses_single(net: fastpinn.MLP, x: torch.Tensor) -> list[torch.Tensor]:
    u = net(x)
    return [u.pow(2).mean(), (u - x[:, :1]).pow(2).mean() * 10]


def test_bad_inputs_name_the_field():
    model = _model()
    with pytest.raises(ValueError, match="terms must be distinct"):
        WeightedBackward(model, fastpinn.DN(), terms=["a", "a"])
    with pytest.raises(ValueError, match="reference must be one of the term names"):
        WeightedBackward(model, fastpinn.DN(), terms=["a", "b"], reference="pde")
    with pytest.raises(ValueError, match="no trainable parameters"):
        WeightedBackward([torch.zeros(3)], fastpinn.DN(), terms=2)
    wb = WeightedBackward(model, fastpinn.DN(), terms=["a", "b"])
    with pytest.raises(ValueError, match="one loss per term"):
        wb([torch.zeros((), dtype=F64)])
    with pytest.raises(ValueError, match="loss of term 'b' must be a torch.Tensor"):
        wb([torch.zeros((), dtype=F64), 1.0])
    with pytest.raises(ValueError, match="loss of term 'a' must be a scalar"):
        wb([torch.zeros(4, dtype=F64), torch.zeros((), dtype=F64)])
    with pytest.raises(ValueError, match="gate must be 'host' or 'device'"):
        WeightedBackward(model, fastpinn.DN(), terms=2, gate="gpu")


def test_nonfinite_losses_are_counted_on_the_device():
    model = _model()
    x = torch.randn(4, 2, dtype=F64)
    wb = WeightedBackward(model, fastpinn.DN(tau=1), terms=3)
    losses = _terms(model, x)
    losses[1] = losses[1] * float("nan")
    wb(losses)
    assert wb.nonfinite_losses.tolist() == [[0, 1, 0]]
    assert int(wb.weighter.skipped[0, 1]) == 1  # and the weight of that term was kept


# ----------------------------------------------------------------------------------- the Trainer
# Above MERGE_POINTS (256) points like the paper's problems: on a smaller one "auto" lets the values-only terms
# join the PDE term's evaluation (tests/test_shared_eval.py), which a loop of per-term losses matches to rounding only.
PAPER_PROBLEMS_TINY = {
    "burgers": lambda: burgers(0, n_pde=256, n_ic=12, n_bc=12, depth=3, width=8),
    "poisson": lambda: fastpinn.problems.poisson(0, n_pde=256, n_bc=16, depth=3, width=8),
    "allen_cahn": lambda: fastpinn.problems.allen_cahn(0, n_pde=256, n_ic=12, n_bc=8, batch_size=256, depth=3,
                                                       width=8),
}


@pytest.mark.parametrize("name", sorted(PAPER_PROBLEMS_TINY))
def test_trainer_step_equals_a_user_loop_of_the_public_pieces(name):
    # The Trainer is "term losses, weighted backward, optimizer step": a hand-written loop of the same
    # public calls gives the same numbers bit for bit on each paper problem (mini-sized, full batch).
    problem = PAPER_PROBLEMS_TINY[name]()
    problem.solution = None  # no reference solve needed here
    trainer = Trainer(problem, fastpinn.DN(beta=0.9, tau=2), dtype=F64, backend="torch")
    history = trainer.train(7)

    prob = problem.to(dtype=F64)
    net = prob.network(dtype=F64)
    opt = torch.optim.Adam([net.theta], lr=1e-3, fused=True)
    wb = WeightedBackward(net.leaves(), fastpinn.DN(beta=0.9, tau=2), prob.term_names, reference=prob.reference_term,
                          adaptive=prob.adaptive, flat=net.theta, backend="torch", shared_graph=False)
    # The Trainer's thread policy, as the README's own loop applies it: the fused kernel's tile reduction
    # (what "auto" picks for these nets) rounds differently with another thread count.
    with fastpinn.threads.use_threads("auto"):
        for _ in range(7):
            losses = [t.loss(net, prob.coords, theta=net.leaves()) for t in prob.terms]
            wb(losses)
            opt.step()
    assert torch.equal(net.theta, trainer.theta)
    assert torch.equal(wb.weights(), trainer.backward.weights())
    assert history.weights.shape == (7, 1, len(prob.terms))


class FourierMLP(nn.Module):
    """Random Fourier features (fixed) followed by a small tanh MLP: a user-written model."""

    def __init__(self, d: int, features: int = 8, width: int = 16, scale: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("B", torch.randn(d, features, generator=torch.Generator().manual_seed(0)) * scale)
        self.net = nn.Sequential(nn.Linear(2 * features, width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.B
        return self.net(torch.cat([torch.sin(z), torch.cos(z)], dim=-1))


@pytest.mark.parametrize("kind", ["fourier", "sequential"])
def test_trainer_trains_a_builtin_problem_with_a_user_module(kind):
    torch.manual_seed(0)
    problem = poisson1d(0, n_pde=64, depth=2, width=4)
    if kind == "fourier":
        model = FourierMLP(1)
    else:
        model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trainer = Trainer(problem, fastpinn.DN(tau=5), network=model, lr=1e-2, dtype=F64, eval_every=100)
    assert trainer.theta.shape == (n_trainable,)
    assert set(trainer.derivative_methods.values()) == {"autograd"}  # auto: the fast method for modules
    err0 = float(trainer.evaluate()[0])
    h = trainer.train(800)
    assert h.losses[-1].sum() < 0.01 * h.losses[0].sum()
    # measured at 800 epochs: 0.033 (Sequential); 0.15 leaves room for other BLAS summation orders
    assert float(trainer.evaluate()[0]) < min(0.15, 0.2 * err0)
    # the module's own parameters are views of the trainer's flat theta: they moved with it
    first = next(p for p in model.parameters() if p.requires_grad)
    assert first.data_ptr() == trainer.theta.data_ptr()


def test_trainer_refuses_a_user_module_for_an_ensemble():
    problem = poisson1d([0, 1], n_pde=16, depth=2, width=4)
    with pytest.raises(ValueError, match="ensemble problem .* needs a fastpinn.MLP"):
        Trainer(problem, fastpinn.DN(), network=nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1)))


class _Allocations(TorchDispatchMode):
    """Outputs of non-mutating aten ops whose last dimension is ``P``: full gradient rows being allocated."""

    def __init__(self, n_params: int) -> None:
        super().__init__()
        self.n_params = n_params
        self.hits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func._schema.is_mutable and not func._overloadname.startswith("out"):
            inputs = {a.untyped_storage().data_ptr() for a in args if isinstance(a, torch.Tensor)}
            for o in out if isinstance(out, (tuple, list)) else [out]:
                # a view (same storage as an input) allocates nothing
                if (isinstance(o, torch.Tensor) and o.dim() >= 1 and o.shape[-1] == self.n_params
                        and o.untyped_storage().data_ptr() not in inputs):
                    self.hits.append(str(func))
        return out


@pytest.mark.parametrize("step_mode", ["eager", "device"])
@pytest.mark.parametrize("scheme", [fastpinn.DN(tau=1), fastpinn.PINN()], ids=["dn", "pinn"])
def test_step_allocates_no_gradient_rows(scheme, step_mode):
    # Per-term gradients accumulate into G in place and the weighted sum is written into a fixed buffer:
    # no op in a step creates a tensor of P entries (the old path made several per term: autograd.grad's
    # row and one slice_backward per weight and bias).
    # The jet path: "fused" (what auto now picks for this net on the CPU) hands the compiled op one flat theta,
    # so it concatenates the per-layer leaves and splits the gradient back (two P-rows per term evaluation).
    problem = burgers(0, n_pde=40, n_ic=8, n_bc=8, depth=3, width=6)
    trainer = Trainer(problem, scheme, backend="cpp", step_mode=step_mode, derivative_method="jet")
    trainer.train(2)
    with _Allocations(trainer.net.n_params) as seen:
        trainer.step()
    assert seen.hits == []
    # the counter does see rows when they are made: a gradient w.r.t. the flat theta (the old path)
    with _Allocations(trainer.net.n_params) as control:
        loss = trainer.problem.terms[0].loss(trainer.net, trainer.problem.coords, theta=trainer.theta, method="jet")
        torch.autograd.grad(loss, trainer.theta)
    assert "aten.slice_backward.default" in control.hits


def test_fresh_optimizer_state_matches_a_real_first_step():
    p = nn.Parameter(torch.randn(5, dtype=F64))
    nadam = torch.optim.NAdam([p], lr=0.01)
    fresh = fresh_optimizer_state(nadam)[id(p)]
    assert float(fresh["mu_product"]) == 1.0 and float(fresh["step"]) == 0.0
    assert float(fresh["exp_avg"].abs().sum()) == 0.0
    asgd = torch.optim.ASGD([p], lr=0.03)
    fresh = fresh_optimizer_state(asgd)[id(p)]
    # ASGD keeps eta in the default float32 dtype: equal to lr to float32 rounding
    assert math.isclose(float(fresh["eta"]), 0.03, rel_tol=1e-7) and float(fresh["mu"]) == 1.0
    assert not nadam.state and not asgd.state and p.grad is None  # the real optimizers were not touched


def test_graph_capture_restores_fresh_nadam_state(monkeypatch):
    # The capture's warm-up creates NAdam state; its fresh value (mu_product = 1, not 0) must come back.
    from fastpinn.cuda_graph import CapturedStep, StateSnapshot

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)

    def make():
        problem = poisson1d(0, n_pde=24, depth=2, width=5)
        return Trainer(problem, fastpinn.DN(tau=2), dtype=F64, backend="torch", step_mode="device",
                       optimizer=lambda params: torch.optim.NAdam(params, lr=1e-2))

    reference, disturbed = make(), make()
    saved = StateSnapshot(disturbed.state_tensors(), disturbed.optimizer)  # what CapturedStep takes
    for _ in range(CapturedStep.WARMUP_STEPS + 1):
        disturbed.step()
    saved.restore()
    (state,) = disturbed.optimizer.state.values()
    assert float(state["mu_product"]) == 1.0 and float(state["step"]) == 0.0
    h_ref, h_dist = reference.train(4), disturbed.train(4)
    assert torch.equal(reference.theta, disturbed.theta)
    assert (h_ref.losses == h_dist.losses).all()


def test_own_loop_gets_the_trainers_thread_policy(monkeypatch):
    """The README's loop runs inside ``fastpinn.threads.use_threads("auto")``: the count the Trainer's
    ``train()`` uses (its History records it), restored afterwards."""
    import fastpinn.threads as threads

    monkeypatch.setenv(threads.ENV, "1")  # the policy's process-wide setting ("auto" measures otherwise)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        trainer = Trainer(poisson1d(0, n_pde=8, depth=2, width=4), fastpinn.DN(tau=2), backend="torch")
        trained_with = trainer.train(1).extra["threads"]
        model = _model()
        wb = WeightedBackward(model, fastpinn.DN(tau=2), terms=3)
        with threads.use_threads("auto") as n:
            seen = torch.get_num_threads()
            wb(_terms(model, torch.randn(4, 2, dtype=F64)))
        assert n == seen == trained_with == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_accumulate_between_updates_adds_the_weighted_gradient():
    """A gradient-statistic scheme between its updates runs one backward of the weighted sum; with
    ``accumulate=True`` it adds to the existing .grad like the update step's combination does."""
    model = _model(4)
    x = torch.randn(6, 2, dtype=F64)
    wb = WeightedBackward(model, fastpinn.DN(beta=0.5, tau=2), terms=3)
    lam = wb(_terms(model, x)).clone()  # the update step
    passes = wb.backward_passes
    extra = sum(p.sum() for p in model.parameters())
    for p in model.parameters():
        p.grad = None
    extra.backward()
    before = _flat_grad(model).clone()
    assert torch.equal(wb(_terms(model, x), accumulate=True), lam)  # not an update step
    assert wb.backward_passes == passes + 1
    want = before + lam @ _reference_G(model, _terms(model, x))
    torch.testing.assert_close(_flat_grad(model), want, rtol=1e-13, atol=1e-15)
