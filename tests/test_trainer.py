"""The training loop: per-term gradients, backward-pass accounting, ensembles, checkpoints, NaN handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn.problems import allen_cahn, poisson1d
from fastpinn.trainer import NonFiniteError, Trainer


def _count_backward(trainer: Trainer) -> list[int]:
    calls = [0]

    def hook(grad):
        calls[0] += 1

    # The first layer's weight is in every term's graph: its hook fires once per backward pass.
    trainer.backward.leaves[0].register_hook(hook)
    return calls


def test_update_epochs_cost_no_extra_backward():
    problem = poisson1d(0, n_pde=32, depth=3, width=8)
    trainer = Trainer(problem, fastpinn.DN(tau=3), backend="torch", eval_every=1000)
    calls = _count_backward(trainer)
    per_epoch = []
    for _ in range(7):
        before = calls[0]
        trainer.train(1)
        per_epoch.append(calls[0] - before)
    # Epochs 0, 3 and 6 update the weights with exactly one backward per loss term (no extra one); the
    # others run one backward of the weighted sum (issue 20).
    K = len(problem.terms)
    assert per_epoch == [K, 1, 1, K, 1, 1, K]


def test_pinn_uses_one_backward_per_step():
    trainer = Trainer(poisson1d(0, n_pde=16, depth=2, width=4), fastpinn.PINN(), backend="torch")
    calls = _count_backward(trainer)
    trainer.train(3)
    assert calls[0] == 3


def test_weighted_gradient_is_gradient_of_weighted_loss():
    problem = poisson1d(0, n_pde=40, depth=3, width=10)
    trainer = Trainer(problem, fastpinn.DN(beta=0.5), dtype=torch.float64, backend="torch")
    trainer.train(2)  # weights move away from 1
    lam = trainer.weighter.weights()[0]
    losses = trainer.term_losses()
    G = trainer.term_gradients(losses).clone()
    fresh = trainer.term_losses()  # term_gradients consumed the first graph
    total = sum(lam[k] * fresh[k].sum() for k in range(len(fresh)))
    want = torch.cat([g.reshape(-1) for g in torch.autograd.grad(total, trainer.backward.leaves)])
    torch.testing.assert_close(fastpinn.Weighter.combine(G[0], lam), want, rtol=1e-12, atol=1e-12)


def test_term_independent_of_parameters_gives_zero_rows():
    # u_xx does not depend on the output bias: its gradient there is exactly zero, not an error.
    problem = poisson1d(0, n_pde=20, depth=3, width=6)
    trainer = Trainer(problem, fastpinn.DN(), dtype=torch.float64, backend="torch")
    G = trainer.term_gradients(trainer.term_losses())
    last_bias = trainer.net.n_params - 1
    assert G[0, 0, last_bias] == 0.0
    assert bool((G[0, 1] != 0).any())


def test_nonfinite_loss_is_reported_not_trained_through():
    problem = poisson1d(0, n_pde=16, depth=2, width=4)
    good = problem.terms[0].residual
    problem.terms[0].residual = lambda f: good(f) * math.nan
    trainer = Trainer(problem, fastpinn.DN(), backend="torch", eval_every=3)
    with pytest.raises(NonFiniteError, match="'pde'"):
        trainer.train(6)
    # Detected at the first check (epoch 3), then restored to the last finite state: the start.
    assert trainer.epoch == 0


def test_skipped_updates_warn():
    problem = poisson1d(0, n_pde=16, depth=2, width=4)
    # A boundary term whose gradient is identically zero: its norm is 0, so its weight must be kept.
    problem.terms[1].residual = lambda f, target: 0.0 * f["u"] + 1.0
    trainer = Trainer(problem, fastpinn.DN(tau=1), backend="torch", eval_every=2)
    with pytest.warns(RuntimeWarning, match="'bc'.*kept the previous weight"):
        history = trainer.train(4)
    assert history.skipped.tolist() == [[0, 4]]
    assert np.all(history.weights[:, 0, 1] == 1.0)


@pytest.mark.parametrize("scheme", [fastpinn.DN(beta=0.9, tau=3), fastpinn.MA(tau=2), fastpinn.PINN()], ids=repr)
def test_ensemble_member_equals_single_run(scheme):
    seeds = [3, 7]
    kwargs = dict(n_pde=24, depth=3, width=8)
    ens = Trainer(poisson1d(seeds, **kwargs), scheme, dtype=torch.float64, backend="torch", eval_every=5)
    h_ens = ens.train(10)
    for s, seed in enumerate(seeds):
        single = Trainer(poisson1d(seed, **kwargs), scheme, dtype=torch.float64, backend="torch", eval_every=5)
        h = single.train(10)
        torch.testing.assert_close(ens.net.theta[s], single.net.theta, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h_ens.losses[:, s], h.losses[:, 0], rtol=1e-10)
        np.testing.assert_allclose(h_ens.weights[:, s], h.weights[:, 0], rtol=1e-10)
        np.testing.assert_allclose(h_ens.rel_l2[:, s], h.rel_l2[:, 0], rtol=1e-9)


def test_checkpoint_resume_equals_straight_run(tmp_path):
    kwargs = dict(n_pde=24, depth=3, width=8)
    straight = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=4), dtype=torch.float64, backend="torch")
    straight.train(12)
    first = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=4), dtype=torch.float64, backend="torch")
    first.train(6)
    first.save_checkpoint(str(tmp_path / "ckpt.pt"))
    resumed = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=4), dtype=torch.float64, backend="torch")
    resumed.load_checkpoint(str(tmp_path / "ckpt.pt"))
    resumed.train(6)
    torch.testing.assert_close(resumed.net.theta, straight.net.theta, rtol=0, atol=0)


def test_minibatches_cover_pde_points_and_update_once_per_epoch():
    problem = allen_cahn(0, n_pde=50, n_ic=8, n_bc=4, batch_size=16, depth=2, width=6)
    trainer = Trainer(problem, fastpinn.DN(tau=1), backend="torch", eval_every=1000)
    steps = trainer.epoch_batches()
    assert len(steps) == 4  # ceil(50 / 16)
    pde_idx = torch.cat([s[0] for s in steps])
    assert sorted(pde_idx.tolist()) == list(range(50))
    assert all(s[1] is None for s in steps)  # constraints whole at every step
    trainer.problem.solution = None  # no reference solve in this unit test
    trainer.train(2)
    assert int(trainer.weighter.n_updates[0]) == 2  # once per epoch, not once per mini-batch
    # Only the initial condition is adaptive in Allen-Cahn.
    w = trainer.weighter.weights()[0]
    assert w[2] == 1.0 and w[3] == 1.0 and w[1] != 1.0


def test_history_save_load(tmp_path):
    trainer = Trainer(poisson1d(0, n_pde=16, depth=2, width=4), fastpinn.DN(), backend="torch", eval_every=2)
    h = trainer.train(4)
    h.save(str(tmp_path / "h.npz"))
    h2 = fastpinn.History.load(str(tmp_path / "h.npz"))
    assert h2.term_names == ["pde", "bc"]
    np.testing.assert_array_equal(h2.losses, h.losses)
    np.testing.assert_array_equal(h2.rel_l2, h.rel_l2)
    assert h2.eval_epochs.tolist() == [2, 4]


def test_poisson1d_trains_end_to_end_and_dn_beats_pinn():
    errors = {}
    for name, scheme in (("pinn", fastpinn.PINN()), ("dn", fastpinn.DN(beta=0.9))):
        trainer = Trainer(poisson1d(0), scheme, eval_every=200)
        h = trainer.train(600)
        errors[name] = float(h.final_rel_l2()[0])
        assert h.losses[-1].sum() < 0.1 * h.losses[0].sum()  # both optimise their own weighted loss
    assert errors["dn"] < 0.05, errors
    assert errors["pinn"] > 3 * errors["dn"], errors


@pytest.mark.parametrize("bad", [dict(eval_every=0), dict(lr=-1.0)])
def test_bad_trainer_arguments(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Trainer(poisson1d(0, n_pde=8, depth=2, width=4), fastpinn.DN(), **bad)


def test_compiled_step_equals_eager_step():
    # One compiled graph per term; float64 so the only differences are reassociation (~1e-16).
    kwargs = dict(n_pde=24, depth=3, width=8)
    eager = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=2), dtype=torch.float64, backend="torch")
    h_eager = eager.train(6)
    compiled = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=2), dtype=torch.float64, backend="torch",
                       compile=True)
    h_comp = compiled.train(6)
    assert h_comp.warmup_seconds > 0 and h_eager.warmup_seconds == 0
    torch.testing.assert_close(compiled.net.theta, eager.net.theta, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_comp.losses, h_eager.losses, rtol=1e-12)


def _histories_equal(a, b, ta, tb, tol):
    torch.testing.assert_close(ta.net.theta, tb.net.theta, rtol=tol, atol=tol)
    np.testing.assert_allclose(a.losses, b.losses, rtol=tol, atol=tol)
    np.testing.assert_allclose(a.weights, b.weights, rtol=tol, atol=tol)
    assert torch.equal(ta.weighter.n_updates, tb.weighter.n_updates)
    assert torch.equal(ta.weighter.skipped, tb.weighter.skipped)


@pytest.mark.parametrize("scheme", [fastpinn.DN(beta=0.9, tau=3, bias_correction=True), fastpinn.MA(tau=2),
                                    fastpinn.ID(tau=1), fastpinn.DN(p=math.inf, tau=2), fastpinn.PINN()], ids=repr)
def test_device_decided_step_equals_eager_step(scheme):
    # Mini-batches with an uneven last batch (50 = 3 x 16 + 2), so an epoch is 4 steps and the device counter
    # must update on the first step of every tau-th epoch only; an ensemble of 2, float64.
    def make(mode):
        problem = allen_cahn([0, 1], n_pde=50, n_ic=8, n_bc=4, batch_size=16, depth=2, width=6)
        problem.solution = None  # no reference solve in this unit test
        return Trainer(problem, scheme, dtype=torch.float64, backend="cpp", eval_every=3, step_mode=mode)

    eager, device = make("eager"), make("device")
    assert device.steps_per_epoch == 4
    h_eager, h_device = eager.train(7), device.train(7)
    # The masked-off EMA restores the state exactly. A fixed scheme runs the same kernels in the same order:
    # bit-for-bit equal. A gradient-statistic scheme's eager step makes one backward of the weighted sum
    # between updates where the device step combines K per-term backwards (issue 20): the same sums in
    # another order, equal to rounding (measured 1.7e-15 relative here).
    _histories_equal(h_eager, h_device, eager, device, tol=1e-12 if scheme.dynamic else 0.0)
    if scheme.dynamic:
        assert int(device.weighter.n_updates[0]) == len(range(0, 7, scheme.tau))
    assert device.backward.gate.step == 7 * 4 and eager.backward.gate.step == 7 * 4


def test_device_step_resumes_from_a_checkpoint(tmp_path):
    kwargs = dict(n_pde=24, depth=3, width=8)
    straight = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=4), dtype=torch.float64, backend="torch",
                       step_mode="device")
    straight.train(10)
    first = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=4), dtype=torch.float64, backend="torch",
                    step_mode="device")
    first.train(6)  # the next update is at epoch 8: the counter must continue from epoch 6, not restart
    first.save_checkpoint(str(tmp_path / "ckpt.pt"))
    resumed = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=4), dtype=torch.float64, backend="torch",
                      step_mode="device")
    resumed.load_checkpoint(str(tmp_path / "ckpt.pt"))
    resumed.train(4)
    torch.testing.assert_close(resumed.net.theta, straight.net.theta, rtol=0, atol=0)
    assert int(resumed.weighter.n_updates[0]) == int(straight.weighter.n_updates[0]) == 3


def test_gated_update_leaves_state_untouched_when_inactive():
    w = fastpinn.Weighter(fastpinn.DN(beta=0.5, bias_correction=True), n_terms=3)
    G = torch.randn(2, 3, 40, dtype=torch.float64)
    w.reset(2, torch.float64)
    before = {k: v.clone() for k, v in w.state_dict().items()}
    w.update_from_stats(w.statistics(G), 40, active=torch.tensor(False))
    for k, v in w.state_dict().items():
        assert torch.equal(v, before[k]), k
    w.update_from_stats(w.statistics(G), 40, active=torch.tensor(True))
    want = fastpinn.Weighter(fastpinn.DN(beta=0.5, bias_correction=True), n_terms=3)
    want.update(G)
    for k, v in w.state_dict().items():
        assert torch.equal(v, want.state_dict()[k]), k


@pytest.mark.parametrize("bad, match", [
    (dict(step_mode="graph"), "step_mode must be one of"),
    (dict(step_mode="cuda_graph", device="cpu"), "needs a CUDA device"),
])
def test_bad_step_mode(bad, match):
    with pytest.raises(ValueError, match=match):
        Trainer(poisson1d(0, n_pde=8, depth=2, width=4), fastpinn.DN(), **bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("compile", [False, True], ids=["eager-terms", "compiled-terms"])
@pytest.mark.parametrize("scheme", [fastpinn.DN(tau=3, bias_correction=True), fastpinn.PINN()], ids=repr)
def test_cuda_graph_step_equals_eager_step(scheme, compile):
    # float64 on the GPU: the graph replays the device step's kernels, so only the compiled terms'
    # reassociation (~1e-16 relative per op, amplified by a few Adam steps) may differ.
    def make(mode, comp):
        problem = allen_cahn([0, 1], n_pde=50, n_ic=8, n_bc=4, batch_size=16, depth=2, width=6)
        problem.solution = None
        return Trainer(problem, scheme, dtype=torch.float64, device="cuda", eval_every=4, step_mode=mode,
                       compile=comp)

    eager, graphed = make("eager", False), make("cuda_graph", compile)
    h_eager, h_graph = eager.train(9), graphed.train(9)
    assert h_graph.warmup_seconds > 0
    assert len(graphed._graphs) == 2  # batch sizes 16 and 2
    _histories_equal(h_eager, h_graph, eager, graphed, tol=1e-10 if compile else 1e-13)
    # The capture's own warm-up steps left no trace: a second run continues identically.
    h_eager2, h_graph2 = eager.train(3), graphed.train(3)
    _histories_equal(h_eager2, h_graph2, eager, graphed, tol=1e-10 if compile else 1e-13)


def test_tuned_derivative_methods_train_like_the_chosen_method():
    from fastpinn.term_losses import TUNED_METHODS as _TUNED

    _TUNED.clear()
    kwargs = dict(n_pde=40, depth=3, width=8)
    tuned = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=2), dtype=torch.float64, backend="torch",
                    derivative_method="tune")
    assert set(tuned.derivative_methods) == {"pde", "bc"}
    assert set(tuned.derivative_methods.values()) <= {"jet", "fused", "func", "autograd", "taylor"}
    assert len(_TUNED) == 2  # one measurement per term
    h = tuned.train(4)
    assert h.warmup_seconds > 0  # the tuning is reported as warm-up, not as training time
    again = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=2), dtype=torch.float64, backend="torch",
                    derivative_method="tune")
    assert again.derivative_methods == tuned.derivative_methods and len(_TUNED) == 2  # cached
    for name, method in tuned.derivative_methods.items():
        # Each term's loss is exactly what its chosen method computes.
        k = tuned.problem.term_names.index(name)
        want = tuned.problem.terms[k].loss(tuned.net, tuned.problem.coords, method=method)
        assert torch.equal(tuned.term_losses()[k].reshape(()), want)


def test_bad_derivative_method():
    with pytest.raises(ValueError, match="derivative_method must be one of"):
        Trainer(poisson1d(0, n_pde=8, depth=2, width=4), fastpinn.DN(), derivative_method="fastest")


@pytest.mark.parametrize("pretrained", [0, 3], ids=["fresh-optimizer", "resumed-optimizer"])
def test_graph_capture_warmup_leaves_no_trace(pretrained, monkeypatch):
    # The CUDA-graph capture trains a few warm-up steps and then writes every piece of state back (Adam
    # moments created during the warm-up are zeroed: their initial value). The same snapshot/restore is
    # exercised here on the CPU, around eager device steps; afterwards training must continue bit for bit
    # as if nothing had happened.
    from fastpinn.cuda_graph import CapturedStep, StateSnapshot

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)

    def make():
        problem = allen_cahn([0, 1], n_pde=50, n_ic=8, n_bc=4, batch_size=16, depth=2, width=6)
        problem.solution = None
        return Trainer(problem, fastpinn.DN(tau=2, bias_correction=True), dtype=torch.float64, backend="torch",
                       step_mode="device", eval_every=5)

    reference, disturbed = make(), make()
    if pretrained:
        reference.train(pretrained)
        disturbed.train(pretrained)
    saved = StateSnapshot(disturbed.state_tensors(), disturbed.optimizer)  # what CapturedStep takes
    batch = disturbed.epoch_batches(advance=False)[0]
    for _ in range(CapturedStep.WARMUP_STEPS + 1):  # the warm-up steps and the captured one
        disturbed.step(batch)
    assert not torch.equal(disturbed.net.theta, reference.net.theta)
    saved.restore()
    h_ref, h_dist = reference.train(5), disturbed.train(5)
    _histories_equal(h_ref, h_dist, reference, disturbed, tol=0.0)


def test_auto_compile_stays_eager_when_the_run_is_too_short():
    trainer = Trainer(poisson1d(0, n_pde=16, depth=2, width=4), fastpinn.DN(), backend="torch", compile="auto")
    h = trainer.train(40)
    d = trainer.compile_decision
    assert d is not None and d["compiled"] is False and not trainer.compiled
    assert d["probe_epochs"] == 20 and d["remaining_epochs"] == 20 and d["eager_ms_per_epoch"] > 0
    # 20 epochs of a tiny problem cannot repay a 60 s compilation.
    assert d["expected_saving_seconds"] < d["assumed_warmup_seconds"]
    assert h.extra["compile_decision"] == d and h.warmup_seconds == 0.0


def test_auto_compile_switches_mid_run_and_matches_eager(monkeypatch):
    from fastpinn import compile_policy as trainer_module

    # Pretend compilation is free, so that the probe decides to compile after 3 epochs.
    monkeypatch.setattr(trainer_module, "AUTO_COMPILE_PROBE_EPOCHS", 3)
    monkeypatch.setattr(trainer_module, "AUTO_COMPILE_WARMUP_SECONDS", 0.0)
    kwargs = dict(n_pde=24, depth=3, width=8)
    eager = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=2), dtype=torch.float64, backend="torch")
    h_eager = eager.train(6)
    auto = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=2), dtype=torch.float64, backend="torch",
                   compile="auto")
    h_auto = auto.train(6)
    assert auto.compiled and auto.compile_decision["compiled"] and h_auto.warmup_seconds > 0
    # float64: compiled and eager terms differ only by reassociation (as in test_compiled_step_equals_eager_step).
    torch.testing.assert_close(auto.net.theta, eager.net.theta, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_auto.losses, h_eager.losses, rtol=1e-12)


def test_bad_compile_argument():
    with pytest.raises(ValueError, match="compile must be True, False or 'auto'"):
        Trainer(poisson1d(0, n_pde=8, depth=2, width=4), fastpinn.DN(), compile="yes")


def test_auto_compile_falls_back_to_eager_when_compilation_fails(monkeypatch):
    from fastpinn import compile_policy as trainer_module

    monkeypatch.setattr(trainer_module, "AUTO_COMPILE_PROBE_EPOCHS", 2)
    monkeypatch.setattr(trainer_module, "AUTO_COMPILE_WARMUP_SECONDS", 0.0)

    def broken_compile(fn, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    kwargs = dict(n_pde=24, depth=3, width=8)
    eager = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=2), dtype=torch.float64, backend="torch")
    eager.train(5)
    auto = Trainer(poisson1d(0, **kwargs), fastpinn.DN(tau=2), dtype=torch.float64, backend="torch",
                   compile="auto")
    message = r"torch.compile failed \(RuntimeError: no C\+\+ compiler found\); training continues eagerly"
    with pytest.warns(RuntimeWarning, match=message):
        auto.train(5)
    assert not auto.compiled and auto.compile_decision["failed"].startswith("RuntimeError")
    torch.testing.assert_close(auto.net.theta, eager.net.theta, rtol=0, atol=0)
