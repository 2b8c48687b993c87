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
    # 0.85: this short a run only starts to move off the constraint (u = x^2 cos pi x alone is at 0.67), so the
    # bound catches a broken setup (a diverging or exploding run is far above 1), not accuracy
    "allen_cahn_hard": (300, 1.0),
}


#: Short forms run only with ``-m slow`` (this file stays under 20 s by default): the two longest, Allen–Cahn's
#: (also the loosest bound) and Helmholtz's 300 epochs (9 s and 8 s on the shared 2-core Xeon, 39 s and 32 s when
#: it was busiest).
SLOW = {"allen_cahn_hard", "helmholtz_hole"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(SHORT)])
def test_gallery_example_short_form(name, capsys):
    epochs, bound = SHORT[name]
    assert _load(name).main(epochs=epochs) < bound
    assert "rel. L2" in capsys.readouterr().out


def test_multiscale_poisson_short_form_fits_the_fast_mode():
    # Not converged in any short budget (its docstring says why), so the check is what the Fourier features buy:
    # 25 epochs bring the residual's mean square from 8.8e6 to 1.5e5 (57x, measured) while a plain tanh MLP with
    # the same constraint stays at 3.0e6 (1.00x: it cannot follow the 25 periods of the fast mode at all)
    import fastpinn

    module = _load("multiscale_poisson")
    history = fastpinn.Trainer(module.make_problem(), fastpinn.PINN(), eval_every=25).train(25)
    first, last = float(history.losses[0].sum()), float(history.losses[-1].sum())
    assert first / last > 10
    assert float(history.final_rel_l2()[0]) < 1.5  # 1.01 (the slow mode is learnt last); the plain MLP is at 3.5
