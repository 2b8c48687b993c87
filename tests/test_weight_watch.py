"""The weight watcher: a collapsing, runaway, stalled or skipped weight is reported once, in words, in the
progress output, the History and metrics.json; a healthy run reports nothing."""

from __future__ import annotations

import json
import textwrap
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from watch_replay import feed

import fastpinn
from fastpinn import Trainer, cli
from fastpinn.problems import poisson1d
from fastpinn.weight_watch import WeightWarning, WeightWatch


def scaled_bc(factor: float, **kw):
    """poisson1d whose boundary residual is scaled: ||grad L_bc|| grows by factor^2, so DN's
    lam_bc = ||grad L_pde|| / ||grad L_bc|| shrinks (factor > 1) or grows (factor < 1) by as much."""
    problem = poisson1d(0, n_pde=16, depth=2, width=4, **kw)
    good = problem.terms[1].residual
    problem.terms[1].residual = lambda f, target: factor * good(f, target)
    return problem


def train_collecting(trainer: Trainer, epochs: int):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.train(epochs)
    return history, [w for w in caught if issubclass(w.category, WeightWarning)]


def test_a_collapsing_weight_is_reported_once_naming_term_epoch_and_remedies():
    trainer = Trainer(scaled_bc(1e4), fastpinn.DN(beta=0.0, tau=1), backend="torch", eval_every=5)
    history, shown = train_collecting(trainer, 20)
    collapses = [r for r in history.extra["weight_warnings"] if r["kind"] == "collapse"]
    assert len(collapses) == 1 and collapses[0]["term"] == "bc"
    report = collapses[0]
    assert report["epoch"] == 5 and report["since_epoch"] == 0 and report["value"] < 1e-3
    assert report["value"] == pytest.approx(float(history.weights[4, 0, 1]))
    text = report["message"]
    assert text.startswith("λ_bc collapsed to") and "by epoch 5" in text and "'pde'" in text
    assert "--beta 0.99" in text and "--weight-min" in text and "--scheme pinn" in text
    assert [str(w.message) for w in shown].count(text) == 1  # shown once, though the weight stays collapsed
    # A second call on the same trainer does not repeat it.
    again, shown = train_collecting(trainer, 10)
    assert not [r for r in again.extra["weight_warnings"] if r["kind"] == "collapse"] and not any(
        "collapsed" in str(w.message) for w in shown)


def test_a_runaway_weight_is_reported_once():
    trainer = Trainer(scaled_bc(1e-4), fastpinn.DN(beta=0.0, tau=1), backend="torch", eval_every=5)
    history, shown = train_collecting(trainer, 15)
    runaways = [r for r in history.extra["weight_warnings"] if r["kind"] == "runaway"]
    assert len(runaways) == 1 and runaways[0]["term"] == "bc" and runaways[0]["value"] > 1e3
    assert runaways[0]["since_epoch"] == 0
    assert "--weight-max" in runaways[0]["message"]
    assert sum("ran away" in str(w.message) for w in shown) == 1


@pytest.mark.parametrize("scheme", [fastpinn.DN(), fastpinn.DN(beta=0.99), fastpinn.PINN()], ids=repr)
def test_a_healthy_run_reports_nothing(scheme):
    trainer = Trainer(poisson1d([0, 1], n_pde=16, depth=2, width=4), scheme, backend="torch", eval_every=10)
    history, shown = train_collecting(trainer, 40)
    assert history.extra["weight_warnings"] == [] and shown == []


def test_skipped_updates_are_one_report_per_term_not_one_warning_per_boundary():
    problem = poisson1d(0, n_pde=16, depth=2, width=4)
    problem.terms[1].residual = lambda f, target: 0.0 * f["u"] + 1.0  # zero gradient: DN cannot update it
    trainer = Trainer(problem, fastpinn.DN(tau=1), backend="torch", eval_every=2)
    history, shown = train_collecting(trainer, 8)
    assert len(shown) == 1 and "term 'bc'" in str(shown[0].message)
    assert "kept the previous weight" in str(shown[0].message)
    (report,) = history.extra["weight_warnings"]
    assert report["kind"] == "skipped" and report["value"] == 2  # the updates of the first window
    assert history.skipped.tolist() == [[0, 8]]
    assert "does not depend on the network" in report["message"] and "exactly 0" not in report["message"]


def test_a_term_fitted_to_exactly_zero_loss_is_named_as_such():
    # The Euler beam (bench/problems/euler_beam.py, DN beta 0.99): the one-point term u(0) = 0 under a weight of
    # 4e7 reaches a float32 loss of exactly 0 at some update epochs, its gradient is 0 and DN skips the update.
    problem = poisson1d(0, n_pde=16, depth=2, width=4)
    made: list[Trainer] = []  # the residual is called while the trainer is built

    def fitted_after_the_first_step(f, target):  # loss exactly 0 once trained: fitted, not "independent"
        return f["u"] - target + 1.0 if not made or made[0].epoch == 0 else 0.0 * f["u"]

    problem.terms[1].residual = fitted_after_the_first_step
    trainer = Trainer(problem, fastpinn.DN(tau=1), backend="torch", eval_every=2)
    made.append(trainer)
    history, shown = train_collecting(trainer, 4)
    (report,) = history.extra["weight_warnings"]
    assert report["kind"] == "skipped" and report["term"] == "bc"
    assert "loss of 'bc' was exactly 0" in report["message"] and "--weight-max" in report["message"]
    assert [str(w.message) for w in shown] == [report["message"]]


def test_a_term_the_untrained_network_already_satisfies_is_named_as_such():
    # User trial 3's cavity: a pin p(0.5, 0.5) = 0 at the centre of the box. The input scaling maps the centre to the
    # origin, tanh is odd and the biases start at 0, so the untrained MLP outputs exactly 0 there: the pin's loss and
    # gradient are 0 before any step and DN skips its first update. That is not a term "fitted to the last bit".
    problem = poisson1d(0, n_pde=16, depth=2, width=4)
    problem.terms[1] = fastpinn.dirichlet("bc", torch.zeros(1, 1, dtype=torch.float64), 0.0)
    trainer = Trainer(problem, fastpinn.DN(tau=1), backend="torch", eval_every=2)
    history, shown = train_collecting(trainer, 4)
    assert history.losses[0, 0, 1] == 0.0 and history.losses[1, 0, 1] > 0.0  # 0 at the start only
    (report,) = history.extra["weight_warnings"]
    assert report["kind"] == "skipped" and report["term"] == "bc" and report["value"] == 1
    assert "exactly 0 before any step: the untrained network already satisfies it" in report["message"]
    assert "fitted to the last bit" not in report["message"]


def test_watch_false_and_custom_thresholds():
    quiet = Trainer(scaled_bc(1e4), fastpinn.DN(beta=0.0, tau=1), backend="torch", eval_every=5, watch=False)
    history, shown = train_collecting(quiet, 10)
    assert "weight_warnings" not in history.extra and shown == []
    # A lower threshold than the collapse reaches: nothing to say.
    lenient = Trainer(scaled_bc(1e4), fastpinn.DN(beta=0.0, tau=1), backend="torch", eval_every=5,
                      watch=WeightWatch(collapse=1e-30, stall_epochs=10_000))
    history, _ = train_collecting(lenient, 10)
    assert [r["kind"] for r in history.extra["weight_warnings"]] == []
    with pytest.raises(ValueError, match="collapse"):
        WeightWatch(collapse=2.0)
    with pytest.raises(ValueError, match="watch"):
        Trainer(poisson1d(0, n_pde=8, depth=2, width=4), watch="yes")


# ------------------------------------------------------------------------------ synthetic histories (watch_replay.feed)
def test_synthetic_collapse_reports_since_when_the_weight_is_below_the_threshold():
    E = 1000
    w = np.ones((E, 1, 2), dtype=np.float32)
    w[:, 0, 1] = np.logspace(0, -5, E)  # 1 -> 1e-5: below 1e-3 from epoch 600 on
    losses = np.ones_like(w)
    losses[:, 0, 1] = np.linspace(1.0, 0.1, E)  # the term's loss still falls: no stall
    reports = feed(WeightWatch(collapse=1e-3), w, losses, eval_every=100)
    assert [(r.kind, r.term, r.epoch, r.since_epoch) for r in reports] == [("collapse", "ic", 700, 600)]


def test_a_member_that_fails_later_is_named_too():
    # Issue 18's Euler beam at 10,000 epochs, 3 seeds: λ_u0 ran away in member 0 at epoch 280 and in members
    # 1 and 2 at 620 and 1160; the one report named member 0 only, so the later failures went unsaid.
    E = 1000
    w = np.ones((E, 3, 2), dtype=np.float32)
    for s, start in enumerate((250, 250, 650)):  # members 0 and 1 together, member 2 later
        w[start:, s, 1] = 1e6
    reports = feed(WeightWatch(), w, np.ones_like(w), eval_every=100)
    runaways = [(r.kind, r.term, r.epoch, r.since_epoch, r.members) for r in reports if r.kind == "runaway"]
    assert runaways == [("runaway", "ic", 300, 250, [0, 1]), ("runaway", "ic", 700, 650, [2])]
    assert "(member 2 of 3)" in [r for r in reports if r.kind == "runaway"][1].message
    # ... and once each: later boundaries, where all three stay above the threshold, add nothing.
    assert len(runaways) == 2


def test_a_weight_at_a_fraction_of_a_percent_of_its_start_is_a_collapse():
    # Issue 18's 1-D wave with --bias-correction (β = 0.99, 3 seeds, 2,000 epochs): λ_ic of members 1 and 2 fell
    # to 0.012 / 0.0023 by epoch 1,000 (0.0065 / 0.0041 at 1,500), the errors stayed at 0.75 / 0.80 against
    # PINN's 0.012 / 0.017 -- and nothing was reported, the threshold being 1e-3 of the start.
    E = 2000
    w = np.ones((E, 3, 2), dtype=np.float32)
    w[:, 1, 1] = np.interp(np.arange(E), [0, 100, 500, 1000, 1500, E - 1], [0.64, 0.14, 0.028, 0.012, 0.0065, 0.006])
    w[:, 2, 1] = np.interp(np.arange(E), [0, 100, 300, 500, 1000, 1500, E - 1],
                           [0.18, 0.027, 0.0096, 0.0056, 0.0023, 0.0041, 0.0107])
    losses = np.ones_like(w)
    losses[:, :, 1] = np.linspace(1.0, 0.7, E)[:, None]  # falling slowly: no stall
    reports = feed(WeightWatch(), w, losses, eval_every=100)
    assert [(r.kind, r.term, r.members) for r in reports] == [("collapse", "ic", [2]), ("collapse", "ic", [1])]
    assert [(r.since_epoch, r.epoch) for r in reports] == [(296, 300), (1182, 1200)]  # below 1e-2 since


def test_a_term_held_at_a_tenth_of_its_weight_whose_loss_does_not_fall_is_a_stall():
    # Issue 18's Klein-Gordon with --bias-correction (β = 0.99, 3 seeds, 2,000 epochs): the first corrected
    # update set λ_bc to 0.25, it drifted to 0.06 (never 10x within 1,000 epochs, never below 1e-2) while L_bc
    # stayed at 0.7-0.9 and the other terms fell 10-20x; rel. L2 1.31 against PINN's 0.126 -- no report.
    E = 2000
    w = np.ones((E, 1, 2), dtype=np.float32)
    w[:, 0, 1] = np.interp(np.arange(E), [0, 100, 500, 1000, E - 1], [0.25, 0.18, 0.096, 0.087, 0.06])
    losses = np.ones_like(w)
    losses[:, 0, 0] = np.logspace(0, -1.3, E)
    losses[:, 0, 1] = np.interp(np.arange(E), [0, 100, 500, 1000, E - 1], [0.70, 0.66, 0.75, 0.82, 0.80])
    reports = feed(WeightWatch(), w, losses, eval_every=100)
    assert [(r.kind, r.term, r.epoch, r.since_epoch) for r in reports] == [("stall", "ic", 1100, 100)]
    assert "% of its start" in reports[0].message
    # A term whose loss falls under a small weight is fine.
    losses[:, 0, 1] = np.logspace(0, -2, E)
    assert feed(WeightWatch(), w, losses, eval_every=100) == []


def test_synthetic_collapse_that_recovers_is_not_reported():
    E = 400
    w = np.ones((E, 1, 2), dtype=np.float32)
    w[:150, 0, 1] = np.logspace(0, -4, 150)  # a dip below 1e-3 inside a window...
    w[150:, 0, 1] = 0.5  # ...gone by the boundary
    assert feed(WeightWatch(collapse=1e-3), w, np.ones_like(w), eval_every=100) == []


def test_synthetic_stall_while_the_weight_moves():
    E = 2000
    w = np.ones((E, 1, 2), dtype=np.float32)
    w[:, 0, 1] = np.logspace(0, -2.5, E)  # down ~18x per 1000 epochs, never below 1e-3
    losses = np.ones_like(w)
    losses[:, 0, 1] = 0.4  # the term's loss does not move
    reports = feed(WeightWatch(collapse=1e-3), w, losses, eval_every=100)
    assert [(r.kind, r.term, r.epoch, r.since_epoch) for r in reports] == [("stall", "ic", 1100, 100)]
    assert "L_ic stalled" in reports[0].message and "--scheme pinn" in reports[0].message
    # The loss falling keeps it quiet.
    losses[:, 0, 1] = np.logspace(0, -3, E)
    assert feed(WeightWatch(collapse=1e-3), w, losses, eval_every=100) == []


# ---------------------------------------------------------------------------------- metrics.json
PROBLEM_FILE = textwrap.dedent('''
    import math, torch
    from fastpinn import Problem, pde, dirichlet, sampling

    def make_problem(seed=0, n_pde=16, epochs=500):
        gen = torch.Generator().manual_seed(seed)
        x = sampling.uniform(n_pde, [0.0], [1.0], gen)
        def residual(f):
            return f["u_xx"][..., 0] + math.pi ** 2 * torch.sin(math.pi * f.x[..., 0])
        def boundary(f):  # scaled: its gradient dwarfs the PDE's, so DN's weight on it collapses
            return 1e4 * f["u"][..., 0]
        def solution():
            X = torch.linspace(0, 1, 33, dtype=torch.float64).reshape(-1, 1)
            return X.numpy(), torch.sin(math.pi * X[:, 0]).numpy()
        return Problem(name="collapsing", coords=("x",), lower=(0.0,), upper=(1.0,),
                       terms=[pde("pde", x, residual, "u_xx"),
                              pde("bc", torch.tensor([[0.0], [1.0]], dtype=torch.float64), boundary, "u")],
                       depth=2, width=4, epochs=epochs, solution=solution, seeds=(seed,))
''')


def test_the_report_reaches_metrics_json_and_the_progress_output(tmp_path, capsys):
    path = tmp_path / "collapsing.py"
    path.write_text(PROBLEM_FILE)
    out = tmp_path / "run"
    rc = cli.main(["train", f"{path}:make_problem", "--scheme", "dn", "--beta", "0", "--tau", "1", "--epochs", "10",
                   "--eval-every", "5", "--no-figures", "--compile", "off", "--threads", "1", "--backend", "torch",
                   "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    collapses = [r for r in metrics["weight_warnings"] if r["kind"] == "collapse"]
    assert len(collapses) == 1 and collapses[0]["term"] == "bc" and collapses[0]["epoch"] == 5
    err = capsys.readouterr().err
    assert err.count("λ_bc collapsed") == 1


def test_a_resumed_run_keeps_earlier_reports_and_does_not_repeat_them(tmp_path):
    first = Trainer(scaled_bc(1e4), fastpinn.DN(beta=0.0, tau=1), backend="torch", eval_every=5)
    h1, _ = train_collecting(first, 10)
    path = str(tmp_path / "ckpt.pt")
    first.save_checkpoint(path)
    second = Trainer(scaled_bc(1e4), fastpinn.DN(beta=0.0, tau=1), backend="torch", eval_every=5)
    second.load_checkpoint(path)
    unaware = Trainer(scaled_bc(1e4), fastpinn.DN(beta=0.0, tau=1), backend="torch", eval_every=5)
    unaware.load_checkpoint(path)
    _, shown = train_collecting(unaware, 5)
    assert any("collapsed" in str(w.message) for w in shown)  # measured against the start, 1
    second.watch.already_reported(h1.extra["weight_warnings"])
    h2, shown = train_collecting(second, 10)
    assert not any("collapsed" in str(w.message) for w in shown)
    kinds = [r["kind"] for r in h1.concat(h2).extra["weight_warnings"]]
    assert kinds.count("collapse") == 1 and kinds == [r["kind"] for r in h1.extra["weight_warnings"] + h2.extra["weight_warnings"]]


def test_fixed_weights_are_the_users_choice_not_a_runaway():
    problem = poisson1d(0, n_pde=16, depth=2, width=4)
    history, shown = train_collecting(Trainer(problem, fastpinn.PINN(weights=(1.0, 1e4)), backend="torch",
                                              eval_every=5), 10)
    assert history.extra["weight_warnings"] == [] and shown == []


# ----------------------------------------------------------------------------- user trial (2026-12-06)
def test_a_warning_without_a_progress_bar_points_at_the_line_that_called_train():
    # It pointed into fastpinn/trainer.py ("history = self._train(epochs, chain)"): a fixed stacklevel counted
    # one frame too few on Python 3.11, where the callbacks' list comprehension is a frame of its own.
    trainer = Trainer(scaled_bc(1e-4), fastpinn.DN(beta=0.0, tau=1), backend="torch", eval_every=5)
    _, shown = train_collecting(trainer, 10)
    assert shown and {w.filename for w in shown} == {__file__}


def test_a_loss_that_rises_under_its_weight_is_said_to_have_risen():
    # User trial, DeepXDE's Poisson-Robin problem under `fastpinn compare`: "L_right stalled from epoch 900 to
    # 1900 (7.97e-06 -> at best 1.27e-02)" -- a loss that grew 1,600x was called stalled.
    E = 2000
    w = np.ones((E, 1, 2), dtype=np.float32)
    w[:, 0, 1] = np.logspace(0, -2.5, E)
    losses = np.ones_like(w)
    losses[:, 0, 1] = np.logspace(-2, 0, E)  # rises 100x
    reports = feed(WeightWatch(collapse=1e-3), w, losses, eval_every=100)
    assert [(r.kind, r.term) for r in reports] == [("stall", "ic")]
    assert reports[0].message.startswith("L_ic rose from epoch 100 to 1100") and reports[0].value > 1


def test_a_weight_far_above_its_start_is_given_as_a_factor_not_a_percentage():
    # The trial's LRA run said "λ_left went from 1.76e+03 to 139 (1.39e+04% of its start)".
    E = 2000
    w = np.ones((E, 1, 2), dtype=np.float32)
    w[:, 0, 1] = np.logspace(0, 3, E)
    losses = np.ones_like(w)
    losses[:, 0, 1] = 0.4
    reports = feed(WeightWatch(runaway=1e6), w, losses, eval_every=100)
    assert [(r.kind, r.term) for r in reports] == [("stall", "ic")]
    assert "x its start" in reports[0].message and "e+" not in reports[0].message.split("its start")[0][-12:]


def _feed_skips(weights: np.ndarray, losses: np.ndarray, skipped_at: int) -> list:
    """Like ``feed`` with one skipped update of term 1 (member 0) in the first window."""
    E, S, K = weights.shape
    weighter = SimpleNamespace(adaptive_mask=(False, True), lam_applied=torch.ones(S, K),
                               skipped=torch.zeros(S, K, dtype=torch.int64))
    trainer = SimpleNamespace(epoch=0, weighter=weighter, running_log=SimpleNamespace(
        weights=torch.tensor(weights), losses=torch.tensor(losses)), rank=0, scheme=fastpinn.DN(),
        problem=SimpleNamespace(term_names=["pde", "right"], reference_term=0))
    watch = WeightWatch(echo=False)
    watch.on_train_begin(trainer, E)
    weighter.skipped[0, 1] = 1
    watch.on_eval(trainer, skipped_at, {})
    return watch.reports


def test_an_exactly_fitted_term_under_a_moderate_weight_is_not_told_to_bound_it():
    # The trial's Poisson-Robin (DN beta 0.99): "the loss of 'right' was exactly 0 (fitted to the last bit,
    # typically under a very large weight: λ_right reached 1.3) ...; bound the weight with --weight-max".
    w = np.full((100, 1, 2), 1.3, dtype=np.float32)
    losses = np.full_like(w, 1e-3)
    losses[50, 0, 1] = 0.0
    (report,) = _feed_skips(w, losses, 100)
    assert report.kind == "skipped" and "moderate weight" in report.message and "harmless" in report.message
    assert "typically under a very large weight" not in report.message
    w[:, 0, 1] = 4e7  # the Euler beam's case keeps its remedy (and is a runaway too)
    (report,) = [r for r in _feed_skips(w, losses, 100) if r.kind == "skipped"]
    assert "very large weight: λ_right reached 4e+07" in report.message
