"""Every built-in problem builds an ensemble from a sequence of seeds, member s equal to the single problem of
seed s: `fastpinn compare burgers_inverse --seeds 3` failed with "int() argument must be ... not 'list'"
(burgers_inverse and kovasznay took one integer seed only)."""

from __future__ import annotations

import pytest
import torch

from fastpinn import cli
from fastpinn.problems import BUILTIN, get


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_a_sequence_of_seeds_builds_the_ensemble_of_the_single_problems(name):
    ens, single = get(name, seed=[0, 1]), get(name, seed=1)
    assert ens.ensemble == 2 and ens.seeds == (0, 1)
    assert ens.term_names == single.term_names and ens.coefficients == single.coefficients
    for a, b in zip(ens.terms, single.terms):
        assert all(torch.equal(pa[1], pb) for pa, pb in zip(a.points, b.points))


def test_train_runs_the_inverse_problem_as_an_ensemble(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "burgers_inverse", "--scheme", "dn", "--seeds", "2", "--epochs", "2", "--n-pde", "64",
                     "--eval-every", "1", "--out", str(out), "--no-progress", "--no-figures"]) == 0
    assert (out / "metrics.json").exists()
