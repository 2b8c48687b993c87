"""A problem declares its network once (``Problem.architecture``); ``Problem.network``, the Trainer's default,
and ``fastpinn train`` / ``fastpinn compare FILE.py:FUNCTION`` all build that network, gallery files included."""

from __future__ import annotations

import csv
import json
import math
from functools import partial
from pathlib import Path

import pytest
import torch

import fastpinn
from fastpinn import MLP, Problem, Trainer, cli, dirichlet, pde
from fastpinn.experiments import load_run
from fastpinn.network import HardConstraint
from fastpinn.networks import FourierFeatureMLP, ModifiedMLP, MultiScaleFourierFeatureMLP

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = ["--epochs", "4", "--eval-every", "2", "--no-figures", "--no-progress", "--compile", "off", "--threads", "1",
        "--backend", "torch"]


def _features(x):
    return torch.cat([x, torch.sin(math.pi * x)], -1)


def _problem(**kw) -> Problem:
    x = torch.linspace(0, 1, 16)[:, None]
    return Problem("p", ("x",), (0.0,), (1.0,), [pde("pde", x, lambda f: f["u_xx"][..., 0] + 1.0, "u_xx"),
                                               dirichlet("bc", torch.tensor([[0.0], [1.0]]), 0.0)],
                   depth=2, width=8, **kw)


def test_the_declared_architecture_is_the_network_of_the_problem_and_of_the_trainer():
    hard = HardConstraint(lambda x: torch.zeros_like(x), lambda x: x * (1 - x))
    problem = _problem(architecture=partial(MLP, input_transform=_features, output_transform=hard,
                                            activation="sin", init="glorot_uniform"))
    net = problem.network()
    assert net.input_transform is _features and net.output_transform is hard and net.n_features == 2
    assert net.activation.name == "sin" and net.init == "glorot_uniform"
    assert torch.equal(net(torch.tensor([[0.0], [1.0]])), torch.zeros(2, 1))  # the constraint holds
    trainer = Trainer(problem, fastpinn.PINN())
    assert trainer.net.input_transform is _features and torch.equal(trainer.net.theta.detach(), net.theta.detach())
    # options given to network() override the factory's own; init=None keeps it
    other = problem.network(activation="tanh", init="glorot_normal")
    assert other.activation.name == "tanh" and other.init == "glorot_normal" and other.input_transform is _features


def test_without_an_architecture_the_network_is_the_plain_mlp_as_before():
    net = _problem().network(init="truncated_normal")
    assert type(net) is MLP and net.input_transform is None and net.init == "truncated_normal"
    ens = fastpinn.stack([_problem(seeds=(0,)), _problem(seeds=(1,))]).network()
    assert ens.ensemble == 2


def test_other_network_classes_are_architectures_too():
    ff = _problem(architecture=partial(FourierFeatureMLP, sigma=2.0, n_features=8))
    assert isinstance(ff.network(), FourierFeatureMLP) and ff.network().n_features == 16
    ensemble = fastpinn.stack([ff, _problem(architecture=ff.architecture, seeds=(1,))])
    assert isinstance(ensemble.network(), FourierFeatureMLP) and ensemble.network().ensemble == 2
    modified = _problem(architecture=ModifiedMLP)  # takes no ensemble=: none is passed for one network
    history = Trainer(modified, fastpinn.PINN()).train(2)
    assert isinstance(modified.network(), ModifiedMLP) and history.epochs == 2


def test_an_architecture_that_is_not_callable_is_refused_in_one_line():
    with pytest.raises(ValueError, match="architecture must be None or a network class/factory"):
        _problem(architecture="fourier")


@pytest.mark.parametrize("name,check", [
    ("laplace_disk", lambda net: net.input_transform is not None and net.input_transform.__name__ == "cartesian_features"),
    ("multiscale_poisson", lambda net: isinstance(net, MultiScaleFourierFeatureMLP) and net.output_transform is not None),
])
def test_fastpinn_train_builds_a_gallery_problems_declared_network(name, check, tmp_path):
    problem = f"{EXAMPLES / name}.py:make_problem"
    out = tmp_path / name
    assert cli.main(["train", problem, "--seed", "0", "--n-pde", "32", "--out", str(out), *FAST]) == 0
    _, _, trainer = load_run(out, problem=problem)
    assert check(trainer.net)
    error = json.loads((out / "config.json").read_text())  # a finished run of the file, recorded
    assert error["identity"]["problem"].endswith(f"{name}.py:make_problem")


def test_fastpinn_compare_runs_a_gallery_problem_with_its_network(tmp_path, capsys):
    problem = f"{EXAMPLES / 'laplace_disk'}.py:make_problem"
    out = tmp_path / "cmp"
    assert cli.main(["compare", problem, "--schemes", "dn", "--seeds", "1", "--n-pde", "32", "--out", str(out),
                     *[a for a in FAST if a != "--no-figures"]]) == 0
    with open(out / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["scheme"] for r in rows] == ["pinn", "dn"]
    assert all(math.isfinite(float(r["rel_l2_mean"])) for r in rows)
    run_dirs = [p.parent for p in out.rglob("config.json")]
    assert run_dirs
    _, _, trainer = load_run(run_dirs[0], problem=problem)
    assert trainer.net.input_transform.__name__ == "cartesian_features"


DECLARED = '''
from functools import partial
import torch
from fastpinn import MLP, Problem, pde, dirichlet

def make_problem(seed=0):
    x = torch.linspace(0, 1, 12)[:, None]
    return Problem("declared", ("x",), (0.0,), (1.0,),
                   [pde("pde", x, lambda f: f["u_xx"][..., 0] + 1.0, "u_xx"),
                    dirichlet("bc", torch.tensor([[0.0], [1.0]]), 0.0)],
                   depth=2, width=8, seeds=(seed,),
                   architecture=partial(MLP, activation="sin", init="glorot_uniform"))
'''


@pytest.mark.parametrize("options,activation,init", [
    ([], "sin", "glorot_uniform"),                                      # the problem's own
    (["--activation", "silu", "--init", "truncated_normal"], "silu", "truncated_normal"),  # the command line's
])
def test_the_command_line_overrides_a_declared_activation_and_init_only_when_set(tmp_path, options, activation, init):
    path = tmp_path / "declared.py"
    path.write_text(DECLARED)
    problem, out = f"{path}:make_problem", tmp_path / "run"
    assert cli.main(["train", problem, "--seed", "0", "--out", str(out), *options, *FAST]) == 0
    _, _, trainer = load_run(out, problem=problem)
    assert trainer.net.activation.name == activation and trainer.net.init == init
