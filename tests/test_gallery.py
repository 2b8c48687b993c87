"""The gallery's newer examples train, in their short form, to the error their docstrings state.

Each threshold sits between the short form's measured error (CPU, float32, seed 0; the numbers are in each
example's docstring and docs/gallery.md) and what a broken setup gives (an untrained network, a dropped or
flipped term), so a test fails when the example stops working, not when rounding moves the last digit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GALLERY = ["helmholtz_hole", "allen_cahn_hard", "lotka_volterra", "multiscale_poisson", "poisson_spheres",
           "poisson_nball"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"gallery_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", GALLERY)
def test_every_gallery_example_documents_its_commands_and_errors(name):
    module = _load(name)
    doc = module.__doc__
    assert callable(module.main) and callable(module.make_problem)
    assert f"python examples/{name}.py" in doc and "rel. L2" in doc and "plain" in doc
    assert "{" not in doc  # no placeholder left: every number measured
    assert module.make_problem().solution is not None  # its exact (or reference) solution


SHORT = {  # name: (epochs, bound); the measured short-form error is in the example's docstring
    # 0.27 with DN weights; unweighted (PINN, and the plain loop) 1.6 at 300 epochs, untrained 1.13
    "helmholtz_hole": (300, 0.6),
    # 0.33 (the plain loop: the same); the constant initial state (N = 0) is at 0.61
    "lotka_volterra": (600, 0.5),
    # 0.21 with DN weights; PINN weights 3.0 at 200 epochs, untrained 1.09
    "poisson_spheres": (150, 0.6),
    # 0.10; untrained 1.05
    "poisson_nball": (200, 0.3),
    # 0.27 (300 Adam epochs with causal weights; the plain loop 0.31); without them 0.85 (the plain loop 0.80),
    # and the constraint alone (u = x^2 cos pi x) is at 0.67: the bound needs the causal weights to work
    "allen_cahn_hard": (300, 0.5),
}


#: Short forms run only with ``-m slow`` (this file stays under 20 s by default): none now -- Helmholtz's 300 epochs
#: took 8-32 s on the busy shared Xeon with the jet path and 3.6 s with what ``auto`` picks since.
SLOW: set[str] = set()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(SHORT)])
def test_gallery_example_short_form(name, capsys):
    epochs, bound = SHORT[name]
    assert _load(name).main(epochs=epochs) < bound
    assert "rel. L2" in capsys.readouterr().out


def _mean_square_fall(history, first: int = 5, last: int = 10) -> float:
    losses = history.losses.sum(-1) if history.losses.ndim > 1 else history.losses
    return float(losses[:first].mean() / losses[-last:].mean())


def test_multiscale_poisson_short_form_fits_the_fast_mode():
    # Not converged in 150 epochs (rel. L2 1.02: the slow mode is learnt last, its docstring says why), so the
    # check is what the multi-scale features buy: the residual's mean square falls 79x (measured) while a plain
    # tanh MLP with the same constraint, points and learning rate falls 1.02x (it cannot follow the fast mode)
    from dataclasses import replace
    from functools import partial

    import fastpinn
    from fastpinn.network import HardConstraint

    module = _load("multiscale_poisson")
    assert _mean_square_fall(module.make_trainer(eval_every=150).train(150)) > 20
    plain = replace(module.make_problem(), architecture=partial(
        fastpinn.MLP, output_transform=HardConstraint(module.zero, module.vanishing)))
    assert _mean_square_fall(module.make_trainer(plain, eval_every=150).train(150)) < 3


@pytest.mark.slow
def test_multiscale_poisson_converges():
    # 0.31 after 1200 epochs (about 45 s), 0.041 after 2000 (the full form); near 1 until epoch 1000
    assert _load("multiscale_poisson").main(epochs=1200) < 0.5
