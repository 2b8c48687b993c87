"""Adding a scheme touches one file plus its registration: a toy scheme defined and registered here alone is
listed, gets its command-line option, trains through the Trainer and the CLI, and its parameter is part of the
run identity."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn import cli
from fastpinn.ops import layout as L
from fastpinn.problems import poisson1d
from fastpinn.schemes import (SCHEME_NAMES, GradientStatsScheme, add_scheme_options, bias_correction_flag, ema_beta,
                              param, register, scheme_from_name, scheme_params_from_args, stat_ratio, unregister,
                              update_interval)


@dataclass(frozen=True)
class MaxOverMax(GradientStatsScheme):
    """A toy scheme: ``hat_j = max|g_r| / (gain max|g_j|)``, smoothed by the shared EMA."""

    beta: float = ema_beta()
    tau: int = update_interval(2)
    bias_correction: bool = bias_correction_flag()
    gain: float = param(1.0, minimum=0.0, low_open=True, symbol="g", help="divides the candidates, > 0")

    def candidate(self, stats, lam_applied, reference, numel):
        return stat_ratio(stats[:, reference, L.MAX_ABS], self.gain * stats[:, :, L.MAX_ABS], stats, reference)


@pytest.fixture
def toy():
    register("toy-max", title="ToyMax")(MaxOverMax)  # as a decorator on the class, in a library module
    yield MaxOverMax
    unregister("toy-max")


def test_a_scheme_defined_here_is_registered_gets_its_option_and_trains(toy):
    assert "toy-max" in SCHEME_NAMES and "toy-max" in fastpinn.SCHEME_NAMES
    parser = argparse.ArgumentParser()
    add_scheme_options(parser)
    args = parser.parse_args(["--gain", "4", "--tau", "1"])
    scheme = scheme_from_name("toy-max", **scheme_params_from_args(["toy-max"], args))
    assert scheme == MaxOverMax(gain=4.0, tau=1)
    assert scheme.identity() == {"scheme": "toy-max", "beta": 0.9, "tau": 1, "bias_correction": False, "gain": 4.0}
    assert scheme.describe() == "ToyMax (β=0.9, τ=1, g=4)"
    with pytest.raises(ValueError, match="gain"):
        MaxOverMax(gain=0)
    trainer = fastpinn.Trainer(poisson1d(0, n_pde=16, depth=2, width=4), scheme, dtype=torch.float64,
                               backend="torch")
    history = trainer.train(4)
    assert np.isfinite(history.losses).all() and not np.allclose(history.weights[-1], 1.0)
    assert int(trainer.weighter.n_updates[0]) == 4  # tau = 1: an update every epoch


def test_the_cli_trains_the_toy_scheme_and_its_run_identity_has_its_parameter(toy, tmp_path, capsys):
    out = tmp_path / "toy"
    argv = ["train", "poisson1d", "--scheme", "toy-max", "--gain", "4", "--epochs", "4", "--n-pde", "16",
            "--eval-every", "2", "--threads", "1", "--no-progress", "--no-figures", "--backend", "torch",
            "--out", str(out)]
    assert cli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["gain"] == 4.0 and config["config"]["gain"] == 4.0
    assert "ToyMax (β=0.9, g=4)" in capsys.readouterr().err
    assert cli.main([*argv[:4], "--gain", "2", *argv[6:]]) == 2  # another gain: not this run
    assert "different configuration" in capsys.readouterr().err


def test_the_toy_is_gone_after_the_test():
    assert "toy-max" not in SCHEME_NAMES
