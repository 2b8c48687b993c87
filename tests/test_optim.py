"""Issue 17 item 3: closure optimizers (L-BFGS) in the Trainer, optimizer stages with checkpoint/resume across
them, lr schedulers, and the input-scaling switch of Problem."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn import Stage
from fastpinn.errors import CheckpointError
from fastpinn.optim import needs_closure, parse_lr_schedule
from fastpinn.problems import poisson1d
from fastpinn.trainer import Trainer


def _problem(n_pde: int = 64, **kw):
    return poisson1d(seed=0, n_pde=n_pde, depth=3, width=16, **kw)


def test_lbfgs_factory_steps_instead_of_asking_for_a_closure():
    """The issue's reproduction: accepted, then ``LBFGS.step() missing 'closure'`` at the first step."""
    tr = Trainer(_problem(), fastpinn.PINN(), optimizer=lambda p: torch.optim.LBFGS(p, max_iter=1,
                                                                                      line_search_fn="strong_wolfe"),
                 eval_every=5)
    h = tr.train(5)
    assert np.isfinite(h.losses).all() and tr.epoch == 5


def _adam_then(second: Stage, scheme=None):
    tr = Trainer(_problem(), fastpinn.PINN() if scheme is None else scheme,
                 stages=[Stage("adam", epochs=300, lr=3e-3), second], eval_every=60)
    return tr.train()


def test_lbfgs_reduces_the_loss_from_where_adam_stopped():
    """PINN (fixed weights: one objective): 60 L-BFGS iterations after 300 Adam epochs halve the loss, where
    60 more Adam epochs take it down by a third (33.1 -> 16.4 vs 22.9 on this machine)."""
    lbfgs = _adam_then(Stage("lbfgs", iterations=60))
    adam = _adam_then(Stage("adam", epochs=60, lr=3e-3))
    assert lbfgs.epochs == 360 and lbfgs.extra["stages"] == [{"optimizer": "adam", "epochs": [0, 300]},
                                                             {"optimizer": "lbfgs", "epochs": [300, 360]}]
    at_switch = lbfgs.losses.reshape(360, -1).sum(-1)[299]
    assert adam.losses.reshape(360, -1).sum(-1)[299] == at_switch  # the same Adam run up to the switch
    end_lbfgs, end_adam = lbfgs.losses.reshape(360, -1).sum(-1)[-1], adam.losses.reshape(360, -1).sum(-1)[-1]
    assert end_lbfgs < 0.6 * at_switch and end_lbfgs < 0.85 * end_adam, (at_switch, end_lbfgs, end_adam)
    assert lbfgs.rel_l2[-1].item() < lbfgs.rel_l2[np.searchsorted(lbfgs.eval_epochs, 300)].item()


def test_lbfgs_with_dynamic_weights():
    """DN (the default): the weights update every tau outer steps, the line search works on the weighted loss."""
    h = _adam_then(Stage("lbfgs", iterations=60), fastpinn.DN())
    weighted = (h.losses * h.weights).reshape(360, -1).sum(-1)
    assert weighted[-1] < 0.2 * weighted[300], (weighted[300], weighted[-1])


def test_closure_recomputes_with_current_weights_and_updates_only_once_per_step(monkeypatch):
    """Each closure call is a weighted backward at the current parameters; only the first of a step may
    update the weights (the gate decides, update=None), the line search's calls pass update=False."""
    from fastpinn.backward import WeightedBackward

    calls = []
    real = WeightedBackward.__call__

    def spy(self, losses, **kw):
        calls.append((kw.get("update"), float(losses[0].detach().sum())))
        return real(self, losses, **kw)

    monkeypatch.setattr(WeightedBackward, "__call__", spy)
    tr = Trainer(_problem(), fastpinn.DN(tau=1), stages=[Stage("lbfgs", iterations=3)])
    assert tr.train().epochs == 3  # the default length: to the end of the stages
    firsts = [i for i, (u, _) in enumerate(calls) if u is None]
    assert len(firsts) == 3 and firsts[0] == 0, calls  # one gate decision per outer step
    assert all(u is False for i, (u, _) in enumerate(calls) if i not in firsts), calls
    assert len(calls) > 3 and len({loss for _, loss in calls}) > 3  # the line search moved the parameters
    assert tr.backward.gate.step == 3


def _staged(eval_every: int = 5) -> Trainer:
    return Trainer(_problem(), stages=[Stage("adam", epochs=10), Stage("lbfgs", iterations=10)],
                   eval_every=eval_every)


def test_resume_in_the_lbfgs_stage_equals_the_uninterrupted_run(tmp_path):
    whole = _staged()
    h_whole = whole.train()
    first = _staged()
    h1 = first.train(15)  # stopped five L-BFGS iterations in
    first.save_checkpoint(str(tmp_path / "c.pt"))
    second = _staged()
    second.load_checkpoint(str(tmp_path / "c.pt"))
    assert second.stages.index == 1 and isinstance(second.optimizer, torch.optim.LBFGS)
    assert second.optimizer.state_dict()["state"][0]["n_iter"] == 5
    h2 = second.train()
    assert second.epoch == 20
    assert torch.equal(second.theta, whole.theta)
    np.testing.assert_array_equal(np.concatenate([h1.losses, h2.losses]), h_whole.losses)


def test_resume_at_the_stage_boundary_and_stage_mismatch(tmp_path):
    whole = _staged()
    whole.train()
    first = _staged()
    first.train(10)
    first.save_checkpoint(str(tmp_path / "c.pt"))
    second = _staged()
    second.load_checkpoint(str(tmp_path / "c.pt"))
    second.train()
    assert torch.equal(second.theta, whole.theta)
    other = Trainer(_problem(), stages=[Stage("adam", epochs=12), Stage("lbfgs", iterations=10)])
    with pytest.raises(CheckpointError, match="stages"):
        other.load_checkpoint(str(tmp_path / "c.pt"))


def test_scheduler_lr_sequence_equals_torchs_and_is_checkpointed(tmp_path):
    def sched(opt):
        return torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)

    tr = Trainer(_problem(), fastpinn.PINN(), lr=1e-2, lr_scheduler=sched, eval_every=1)
    seen = []
    tr.train(6, callback=lambda t, e, info: seen.append(t.optimizer.param_groups[0]["lr"]))
    ref_opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-2)
    ref = sched(ref_opt)
    expected = []
    for _ in range(6):
        ref_opt.step()
        ref.step()
        expected.append(ref_opt.param_groups[0]["lr"])
    assert seen == expected
    tr.save_checkpoint(str(tmp_path / "c.pt"))
    again = Trainer(_problem(), fastpinn.PINN(), lr=1e-2, lr_scheduler=sched)
    again.load_checkpoint(str(tmp_path / "c.pt"))
    assert again.lr_scheduler.last_epoch == 6 and again.optimizer.param_groups[0]["lr"] == expected[-1]
    plain = Trainer(_problem(), fastpinn.PINN(), lr=1e-2)
    with pytest.raises(CheckpointError, match="scheduler"):
        plain.load_checkpoint(str(tmp_path / "c.pt"))


@pytest.mark.parametrize("spec, cls", [("exp:0.99", torch.optim.lr_scheduler.ExponentialLR),
                                       ("step:100:0.5", torch.optim.lr_scheduler.StepLR),
                                       ("cosine", torch.optim.lr_scheduler.CosineAnnealingLR)])
def test_parse_lr_schedule(spec, cls):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    assert isinstance(parse_lr_schedule(spec, 1000)(opt), cls)
    assert parse_lr_schedule("none", 10) is None


@pytest.mark.parametrize("spec", ["exp", "exp:0", "exp:1.5", "exp:nan", "step:0:0.5", "step:a:0.5", "linear", ""])
def test_parse_lr_schedule_refuses(spec):
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        parse_lr_schedule(spec, 10)


def test_bad_stages_are_refused_before_training():
    with pytest.raises(ValueError, match="only the last stage"):
        Trainer(_problem(), stages=[Stage("adam"), Stage("lbfgs", iterations=5)])
    with pytest.raises(ValueError, match="not both"):
        Trainer(_problem(), optimizer=lambda p: torch.optim.SGD(p, lr=1e-3), stages=[Stage("adam", epochs=3)])
    with pytest.raises(ValueError, match="step_mode='eager'"):
        Trainer(_problem(), step_mode="device", stages=[Stage("adam", epochs=3), Stage("lbfgs", iterations=3)])
    with pytest.raises(ValueError, match="Stage optimizer"):
        Stage("bfgs")
    with pytest.raises(ValueError, match="not both"):
        Stage("lbfgs", epochs=3, iterations=3)
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        Trainer(_problem(), lr_scheduler=lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o))
    from fastpinn.rba import ResidualAttention

    with pytest.raises(ValueError, match="closure optimizer"):
        Trainer(_problem(), stages=[Stage("adam", epochs=3), Stage("lbfgs", iterations=3)],
                attention=ResidualAttention([64, 2], terms=(0,)))
    assert needs_closure(torch.optim.LBFGS([torch.zeros(1, requires_grad=True)]))
    assert not needs_closure(torch.optim.Adam([torch.zeros(1, requires_grad=True)]))


def _by_hand(net, x):
    """The MLP's forward written out, on ``x`` as given (no scaling)."""
    h = x
    for i, (w, b) in enumerate(net.layers()):
        h = h @ w.T + b
        h = torch.tanh(h) if i < net.depth - 1 else h
    return h


def test_input_scaling_switch_feeds_raw_coordinates():
    """Problem(input_scaling=False): the network sees x itself, not x scaled from the box onto [-1, 1]."""
    base = _problem()
    assert base.input_scaling
    terms = base.terms[:1]
    kw = dict(depth=3, width=8, points_outside="ignore")
    raw = fastpinn.Problem("box", ("x",), (0.0,), (10.0,), terms, input_scaling=False, **kw)
    raw = raw.network(dtype=torch.float64)
    scaled = fastpinn.Problem("box", ("x",), (0.0,), (10.0,), terms, **kw).network(dtype=torch.float64)
    x = torch.tensor([[0.0], [2.5], [10.0]], dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(raw(x), _by_hand(raw, x))
        assert torch.allclose(scaled(x), _by_hand(scaled, x * 0.2 - 1.0))
        assert not torch.allclose(scaled(x), _by_hand(scaled, x))
    with pytest.raises(ValueError, match="input_scaling"):
        fastpinn.Problem("box", ("x",), (0.0,), (10.0,), terms, input_scaling="no", **kw)
    # the Trainer trains it (its derivative path sees the same raw inputs)
    tr = Trainer(dataclasses.replace(_problem(), input_scaling=False), fastpinn.PINN(), eval_every=5)
    assert np.isfinite(tr.train(5).losses).all()


def test_a_run_stopped_in_the_lbfgs_stage_resumes_bit_identically(tmp_path, monkeypatch):
    """The run layer: SIGTERM during an L-BFGS iteration, then the same command continues in stage 2."""
    import os
    import signal

    from fastpinn.run import RunConfig, train_run
    from fastpinn.run.one_run import Interrupted

    cfg = RunConfig(problem="poisson1d", epochs=20, optimizer="adam+lbfgs", lbfgs_iters=15, backend="torch",
                    dtype="float64", eval_every=5, problem_kwargs={"n_pde": 32})

    def run(out):
        return train_run(cfg, out, figures=False, checkpoint_every=5, checkpoint_seconds=None)

    run(tmp_path / "straight")
    real = Trainer._run_step
    sent = []

    def step_then_stop(self, idx):
        if self.epoch == 27 and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, idx)

    monkeypatch.setattr(Trainer, "_run_step", step_then_stop)
    with pytest.raises(Interrupted):
        run(tmp_path / "run")
    monkeypatch.undo()
    state = Trainer.read_checkpoint(str(tmp_path / "run" / "checkpoint.pt"))
    assert state["epoch"] == 28 and state["stage"] == 1 and state["optimizer"]["state"][0]["n_iter"] == 8
    assert run(tmp_path / "run")["resumed_from_epoch"] == 28
    a, b = (fastpinn.History.load(str(tmp_path / d / "history.npz")) for d in ("straight", "run"))
    assert a.epochs == b.epochs == 35
    for name in ("losses", "weights", "rel_l2"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    theta = [Trainer.read_checkpoint(str(tmp_path / d / "checkpoint.pt"))["theta"] for d in ("straight", "run")]
    assert torch.equal(*theta)


def _two_groups(**adam):
    torch.manual_seed(0)
    theta, coef = torch.nn.Parameter(torch.randn(300)), torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.Adam([{"params": [theta]}, {"params": [coef], "lr": 5e-2}],
                           **{"lr": 1e-2, "fused": True, "weight_decay": 1e-3, **adam})
    return theta, coef, opt


def _run(step, theta, coef, n=12):
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        theta.grad, coef.grad = torch.randn(300, generator=g), torch.randn(3, generator=g)
        step()


@pytest.mark.parametrize("adam", [{}, {"maximize": True}, {"amsgrad": True}])
def test_direct_adam_step_equals_torch_adam_bit_for_bit(adam, monkeypatch):
    """Issue 20 item 4: the Trainer's Adam step calls the fused kernel itself (torch's Python around it was ~95 us
    of a 1 ms tiny-problem step); the parameters and the state stay exactly torch's. Only the first step (which
    creates the state) goes through torch's ``step``; AMSGrad always does."""
    from fastpinn.optim import DirectAdamStep

    calls = []
    original = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    t1, c1, o1 = _two_groups(**adam)
    t2, c2, o2 = _two_groups(**adam)
    _run(o1.step, t1, c1)
    calls.clear()
    _run(DirectAdamStep(o2), t2, c2)
    assert torch.equal(t1, t2) and torch.equal(c1, c2)
    for p, q in ((t1, t2), (c1, c2)):
        assert all(torch.equal(o1.state[p][k], o2.state[q][k]) for k in o1.state[p])
    assert len(calls) == (12 if adam.get("amsgrad") else 1)


@pytest.mark.parametrize("threads", [1, 2])
def test_direct_adam_step_runs_small_parameter_sets_on_one_thread(threads, monkeypatch):
    """Fused Adam splits even a few thousand elements over the intra-op threads; waking them after a tiny
    problem's serial step cost up to ms at 2 threads. Below SERIAL_ADAM_ELEMENTS the kernel runs on one thread
    (the same floats: elementwise), and the caller's thread count is back afterwards."""
    from fastpinn.optim import SERIAL_ADAM_ELEMENTS, DirectAdamStep

    seen = []
    fused = torch._fused_adam_
    monkeypatch.setattr(torch, "_fused_adam_", lambda *a, **k: seen.append(torch.get_num_threads()) or fused(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t1, c1, o1 = _two_groups()
        t2, c2, o2 = _two_groups()
        _run(o1.step, t1, c1)
        step = DirectAdamStep(o2)
        _run(step, t2, c2)
        assert torch.equal(t1, t2) and torch.equal(c1, c2)
        assert seen[-11:] == [1] * 11 and torch.get_num_threads() == threads  # 303 parameters: one thread
        big = torch.nn.Parameter(torch.zeros(SERIAL_ADAM_ELEMENTS))
        opt = torch.optim.Adam([big], lr=1e-3, fused=True)
        step = DirectAdamStep(opt)
        for _ in range(2):
            big.grad = torch.ones_like(big)
            step()
        assert seen[-1] == threads  # at the threshold: the threads asked for
    finally:
        torch.set_num_threads(before)


def test_direct_adam_step_leaves_a_scheduled_or_hooked_optimizer_to_torch():
    from fastpinn.optim import DirectAdamStep

    theta, coef, opt = _two_groups()
    step = DirectAdamStep(opt)
    _run(step, theta, coef, n=1)
    assert step._plan() is not None
    handle = opt.register_step_pre_hook(lambda *a: None)
    assert step._plan() is None
    handle.remove()
    torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)  # wraps opt.step on the instance
    assert step._plan() is None
    assert not DirectAdamStep(torch.optim.SGD([theta], lr=0.1)).eligible


def test_trainer_with_direct_adam_equals_torch_adam(monkeypatch):
    """A Trainer's run (an inverse problem: the coefficients are Adam's second group) with the direct step is the
    run with torch's ``Adam.step``, bit for bit."""
    from fastpinn import optim

    from fastpinn.problems.inverse import burgers_inverse

    def run():
        problem = burgers_inverse(0, n_data=40, n_pde=60, n_ic=10, n_bc=10, depth=3, width=8)
        tr = Trainer(problem, fastpinn.DN(tau=3), eval_every=100, threads=None, coefficient_lr=3e-2)
        tr.train(9)
        return tr.theta.detach().clone(), tr.coefficients.detach().clone()

    direct = run()
    monkeypatch.setattr(optim.DirectAdamStep, "_plan", lambda self: None)
    by_torch = run()
    assert torch.equal(direct[0], by_torch[0]) and torch.equal(direct[1], by_torch[1])
    assert float(direct[1].reshape(-1)[0]) != 0.1  # the coefficient (its own Adam group) moved
