"""Every scheme trains through the one weighted backward: in the Trainer, for ensembles, across a
checkpoint, and from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn import cli
from fastpinn.problems import poisson1d
from fastpinn.schemes import SCHEME_NAMES, scheme_from_name
from fastpinn.trainer import Trainer

KW = dict(n_pde=24, depth=2, width=6)


def _scheme(name: str):
    # tau = 2 so a few epochs hold several updates (GradNorm and Uncertainty train every step by design, PINN
    # has no tau: scheme_from_name refuses parameters a scheme does not declare)
    return scheme_from_name(name, **({} if name in ("pinn", "uncertainty", "gradnorm") else {"tau": 2}))


def _trainer(name: str, seed=0, **kw) -> Trainer:
    return Trainer(poisson1d(seed, **KW), _scheme(name), dtype=torch.float64, backend="torch", eval_every=4, **kw)


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_every_scheme_trains_and_moves_its_weights(name):
    t = _trainer(name)
    h = t.train(8)
    assert np.isfinite(h.losses).all()
    if name != "pinn":
        assert not np.allclose(h.weights[-1], h.weights[0]), h.weights[[0, -1]]
    # one backward per step, but one per term on the update steps of schemes that read per-term gradients
    # (issue 20: between updates the weighted gradient is one backward of the weighted sum)
    K = len(t.problem.terms)
    updates = sum(t.backward.gate.schedule.is_update(i) for i in range(8)) if t.weighter.reads == "stats" else 0
    assert t.backward_passes == updates * K + (8 - updates)
    if name in ("ma", "id", "dn", "lra", "gradnorm-w"):
        assert 0 < updates < 8  # tau = 2: both kinds of step ran


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_every_scheme_resumes_bit_identically(name, tmp_path):
    straight = _trainer(name)
    straight.train(8)
    first = _trainer(name)
    first.train(3)  # off the update grid (tau = 2)
    first.save_checkpoint(str(tmp_path / "c.pt"))
    resumed = _trainer(name)
    resumed.load_checkpoint(str(tmp_path / "c.pt"))
    resumed.train(5)
    assert torch.equal(resumed.theta, straight.theta)
    assert torch.equal(resumed.weighter.lam_applied, straight.weighter.lam_applied)


@pytest.mark.parametrize("name", [n for n in SCHEME_NAMES if n != "ntk"])
def test_ensemble_member_equals_its_single_run(name):
    ens = Trainer(poisson1d([0, 1], **KW), _scheme(name), dtype=torch.float64, backend="torch")
    ens.train(6)
    single = _trainer(name, seed=1)
    single.train(6)
    torch.testing.assert_close(ens.theta[1], single.theta, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ens.weighter.lam_applied[1], single.weighter.lam_applied[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["softadapt", "ntk", "gradnorm"])
def test_cli_trains_the_schemes_the_trainer_used_to_refuse(name, tmp_path):
    out = tmp_path / name
    rc = cli.main(["train", "poisson1d", "--scheme", name, "--epochs", "6", "--n-pde", "16", "--eval-every", "3",
                   "--no-figures", "--no-progress", "--backend", "torch", "--threads", "1", "--compile", "off",
                   "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scheme"] == name and np.isfinite(metrics["rel_l2"])


def test_device_gate_runs_loss_based_schemes_like_the_host_gate():
    host, device = _trainer("relobralo"), _trainer("relobralo", step_mode="device")
    h_host, h_device = host.train(6), device.train(6)
    assert torch.equal(host.theta, device.theta) and (h_host.weights == h_device.weights).all()


def test_residual_attention_in_the_trainer_matches_its_definition_and_resumes(tmp_path):
    from fastpinn.rba import ResidualAttention

    def make():
        p = poisson1d(0, **KW)
        return Trainer(p, _scheme("dn"), dtype=torch.float64, backend="torch",
                       attention=ResidualAttention([t.n_points for t in p.terms], terms=(0,), gamma=0.9, eta=0.1))

    t = make()
    lam0 = t.attention.lam[0].clone()
    r = t.problem.terms[0].residual_values(t.net, t.problem.coords).detach().reshape(1, -1)
    want_loss = (lam0 * r).pow(2).mean()
    losses = t.step()
    torch.testing.assert_close(losses[0, 0], want_loss, rtol=1e-12, atol=0)  # the attended PDE loss
    a = r.abs()
    torch.testing.assert_close(t.attention.lam[0], 0.9 * lam0 + 0.1 * a / a.max(), rtol=1e-12, atol=0)
    # checkpoint / resume continue the point weights bit for bit
    straight = make()
    straight.train(6)
    first = make()
    first.train(2)
    first.save_checkpoint(str(tmp_path / "c.pt"))
    resumed = make()
    resumed.load_checkpoint(str(tmp_path / "c.pt"))
    resumed.train(4)
    assert torch.equal(resumed.theta, straight.theta)
    assert torch.equal(resumed.attention.lam[0], straight.attention.lam[0])


def test_cli_rba_option(tmp_path):
    out = tmp_path / "rba"
    rc = cli.main(["train", "poisson1d", "--scheme", "pinn", "--rba", "--rba-eta", "0.05", "--epochs", "6",
                   "--n-pde", "16", "--eval-every", "3", "--no-figures", "--no-progress", "--backend", "torch",
                   "--threads", "1", "--compile", "off", "--out", str(out)])
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["attention"] == {"eta": 0.05, "gamma": 0.999}
