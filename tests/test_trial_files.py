"""Every problem file of the user trials (bench/trials/) still builds with the public API, trains a few epochs
under the default weighting and is evaluated against its own reference: the results files quote commands on
them, and a problem file nobody runs goes stale."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import fastpinn
from fastpinn.run.problem_names import problem_factory

TRIALS = Path(__file__).resolve().parent.parent / "bench" / "trials"
FILES = sorted(p.name for p in TRIALS.glob("*.py"))


def test_the_trial_files_are_found():
    assert {"elasticity_plate.py", "lid_driven_cavity.py", "reaction_rate_inverse.py", "wave_hard.py"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_a_trial_problem_builds_trains_and_evaluates(name):
    problem = problem_factory(f"{TRIALS / name}:make_problem")(seed=0)
    assert isinstance(problem, fastpinn.Problem) and problem.terms
    trainer = fastpinn.Trainer(problem, fastpinn.DN(beta=0.99))
    history = trainer.train(epochs=3)
    assert history.epochs == 3 and all(math.isfinite(float(v)) for v in history.losses.reshape(-1)), history.losses
    error = trainer.evaluate()  # [S] against the file's own reference solution
    assert error.shape == (1,) and math.isfinite(float(error[0])) and float(error[0]) >= 0
