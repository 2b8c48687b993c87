"""Remedy options of the EMA schemes: bounds on the weights (weight_min/weight_max), a warm-up with fixed
weights (weight_warmup). Without them the paper's method is unchanged, bit for bit."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn import Trainer, Weighter
from fastpinn.run.config import RunConfig
from fastpinn.schemes import scheme_from_name
from fastpinn.schemes.options import add_scheme_options, scheme_params_from_args
from fastpinn.problems import poisson1d

EMA_SCHEMES = ("ma", "id", "dn", "lra", "gradnorm-w", "ntk")


def scaled_bc(factor: float):
    problem = poisson1d(0, n_pde=16, depth=2, width=4)
    good = problem.terms[1].residual
    problem.terms[1].residual = lambda f, target: factor * good(f, target)
    return problem


def train_weights(scheme, epochs=12, problem=None, **kw) -> np.ndarray:
    trainer = Trainer(problem or poisson1d(0, n_pde=16, depth=2, width=4), scheme, backend="torch",
                      dtype=torch.float64, eval_every=4, watch=False, **kw)
    return trainer.train(epochs).weights  # [E, S, K]


@pytest.mark.parametrize("name", EMA_SCHEMES)
def test_every_ema_scheme_declares_the_remedies_and_records_them_only_when_set(name):
    plain = scheme_from_name(name)
    assert set(plain.remedies()) == {"weight_min", "weight_max", "weight_warmup"}
    assert not set(plain.identity()) & set(plain.remedies())  # runs without them keep their identity
    bounded = scheme_from_name(name, weight_min=0.01, weight_max=100.0, weight_warmup=50)
    assert bounded.identity() == {**plain.identity(), "weight_min": 0.01, "weight_max": 100.0, "weight_warmup": 50}
    assert fastpinn.schemes.scheme_from_dict(bounded.to_dict()) == bounded
    assert "λ_min=0.01" in bounded.describe() and "warm-up=50" in bounded.describe()


def test_loss_based_schemes_have_no_remedies():
    assert fastpinn.SoftAdapt.remedies() == {} and fastpinn.PINN.remedies() == {}


def test_bad_bounds_are_one_line_errors():
    for kw, field in [({"weight_min": 2.0}, "weight_min"), ({"weight_max": 0.5}, "weight_max"),
                      ({"weight_min": 0.0}, "weight_min"), ({"weight_warmup": -1}, "weight_warmup")]:
        with pytest.raises(ValueError) as info:
            fastpinn.DN(**kw)
        assert field in str(info.value) and "\n" not in str(info.value)


def test_the_cli_sets_the_remedies_and_the_run_identity_carries_them():
    parser = argparse.ArgumentParser()
    add_scheme_options(parser)
    args = parser.parse_args(["--weight-min", "0.01", "--weight-max", "1e3", "--weight-warmup", "500"])
    params = scheme_params_from_args(["dn"], args)
    assert params == {"weight_min": 0.01, "weight_max": 1000.0, "weight_warmup": 500}
    cfg = RunConfig(problem="burgers", scheme="dn", scheme_params=params)
    assert cfg.scheme_object() == fastpinn.DN(weight_min=0.01, weight_max=1000.0, weight_warmup=500)
    assert cfg.identity()["weight_warmup"] == 500 and RunConfig.from_dict(cfg.to_dict()) == cfg
    assert "weight_min" not in RunConfig(problem="burgers", scheme="dn").identity()
    with pytest.raises(ValueError, match="--weight-min is not an option of scheme 'softadapt'"):
        scheme_params_from_args(["softadapt"], args)


def test_no_option_is_the_paper_method_bit_for_bit():
    """Bounds that never bind run the clamp and change nothing; no bounds do not run it at all: both give
    exactly the weights of the plain EMA, computed here by hand from the Weighter's own statistics."""
    plain = train_weights(fastpinn.DN(beta=0.9, tau=2))
    loose = train_weights(fastpinn.DN(beta=0.9, tau=2, weight_min=1e-30, weight_max=1e30, weight_warmup=0))
    assert np.array_equal(plain, loose)
    # the EMA by hand on fixed gradients: lam <- beta lam + (1 - beta) ||g_pde|| / ||g_j||
    G = torch.randn(3, 50, dtype=torch.float64)
    w = Weighter(fastpinn.DN(beta=0.9), n_terms=3, backend="torch")
    lam = torch.ones(3, dtype=torch.float64)
    for step in range(4):
        G = G * torch.tensor([[1.0], [0.5], [3.0]], dtype=torch.float64)
        got = w.update(G)
        norms = G.norm(dim=1)
        lam = torch.where(torch.arange(3) == 0, lam, 0.9 * lam + 0.1 * norms[0] / norms)
        torch.testing.assert_close(got, lam, rtol=1e-15, atol=0)


def test_bounds_clamp_a_collapsing_and_a_runaway_weight():
    low = train_weights(fastpinn.DN(beta=0.0, tau=1, weight_min=0.05), problem=scaled_bc(1e4))
    free = train_weights(fastpinn.DN(beta=0.0, tau=1), problem=scaled_bc(1e4))
    assert free[:, 0, 1].max() < 1e-3  # unbounded it collapses at once...
    assert np.all(low[:, 0, 1] == 0.05)  # ...the bound holds it at weight_min exactly
    high = train_weights(fastpinn.DN(beta=0.0, tau=1, weight_max=100.0), problem=scaled_bc(1e-4))
    assert np.all(high[:, 0, 1] == 100.0)
    assert np.all(low[:, 0, 0] == 1.0) and np.all(high[:, 0, 0] == 1.0)  # the reference keeps 1


def test_bounds_hold_with_bias_correction_and_in_the_weighter_alone():
    w = Weighter(fastpinn.DN(beta=0.9, bias_correction=True, weight_max=2.0), n_terms=2, backend="torch")
    G = torch.tensor([[1.0, 1.0], [1e-3, 1e-3]], dtype=torch.float64)  # candidate 1000 for term 1
    for _ in range(3):
        lam = w.update(G)
        assert lam[1] == 2.0 and w.lam[0, 1] <= 2.0


def test_the_device_gate_leaves_a_clamped_state_alone():
    w = Weighter(fastpinn.DN(beta=0.0, weight_min=0.1), n_terms=2, backend="torch")
    G = torch.tensor([[1e-3, 1e-3], [1.0, 1.0]], dtype=torch.float64)
    w.update(G)
    before = w.lam.clone()
    w.update_from_stats(w.statistics(G.unsqueeze(0) * 7.0), 2, active=torch.tensor(False))
    assert torch.equal(w.lam, before) and int(w.n_updates) == 1


@pytest.mark.parametrize("tau, updates", [(1, [5, 6, 7, 8]), (3, [5, 8])])
def test_warmup_keeps_the_weights_at_one_then_follows_the_schedule(tau, updates):
    E = 9
    warm = train_weights(fastpinn.DN(beta=0.5, tau=tau, weight_warmup=5), epochs=E)
    assert np.all(warm[:5] == 1.0)  # fixed for the first 5 epochs
    changed = [e for e in range(1, E) if not np.array_equal(warm[e], warm[e - 1])]
    assert changed == updates
    assert fastpinn.Weighter(fastpinn.DN(tau=tau, weight_warmup=5), 2).schedule.first_step == 5


def test_warmup_in_steps_with_mini_batches():
    problem = poisson1d(0, n_pde=16, depth=2, width=4)
    problem.terms[0].batch_size = 8  # 2 steps per epoch
    weights = train_weights(fastpinn.DN(beta=0.5, tau=1, weight_warmup=2), epochs=4, problem=problem)
    assert np.all(weights[:2] == 1.0) and not np.all(weights[2] == 1.0)


def test_fastpinn_train_defaults_dn_to_beta_099_and_keeps_the_class_default():
    """The evidence (docs/weights.md): at the README's Burgers command, beta = 0.9 collapses lam_ic, 0.99 does not."""
    parser = argparse.ArgumentParser()
    add_scheme_options(parser)
    none_given = parser.parse_args([])
    assert scheme_params_from_args(["dn"], none_given, cli_defaults=True) == {"beta": 0.99}
    assert scheme_params_from_args(["ma"], none_given, cli_defaults=True) == {}
    assert scheme_params_from_args(["dn"], parser.parse_args(["--beta", "0.9"]), cli_defaults=True) == {"beta": 0.9}
    assert scheme_params_from_args(["dn", "ma"], none_given) == {}  # compare: the class defaults
    assert fastpinn.DN().beta == 0.9  # the paper's value stays the class default


def test_the_reference_term_is_a_run_option(tmp_path, capsys):
    from fastpinn import cli
    from fastpinn.trainer import History

    out = tmp_path / "ref-bc"
    rc = cli.main(["train", "poisson1d", "--reference-term", "bc", "--tau", "1", "--epochs", "4", "--n-pde", "16",
                   "--no-figures", "--no-progress", "--compile", "off", "--threads", "1", "--backend", "torch",
                   "--out", str(out)])
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["reference_term"] == "bc"
    weights = History.load(str(out / "history.npz")).weights  # [E, 1, K]: bc fixed at 1, pde adaptive
    assert np.all(weights[:, 0, 1] == 1.0) and not np.all(weights[:, 0, 0] == 1.0)
    assert "reference_term" not in RunConfig(problem="poisson1d").identity()  # earlier runs keep their identity
    rc = cli.main(["train", "poisson1d", "--reference-term", "nope", "--epochs", "2", "--out", str(tmp_path / "x")])
    assert rc == cli.EXIT_USAGE
    assert "reference_term must be one of pde, bc, got 'nope'" in capsys.readouterr().err


def test_an_explicit_adaptive_mask_keeps_its_fixed_terms():
    from fastpinn.run.config import with_reference_term

    problem = poisson1d(0, n_pde=8, depth=2, width=4)
    moved = with_reference_term(problem, "bc")
    assert moved.reference_term == 1 and moved.adaptive is None
    masked = with_reference_term(dataclasses.replace(problem, adaptive=(False, True)), "bc")
    assert masked.adaptive == (False, False)
