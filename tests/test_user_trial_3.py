"""Defects found by the third user trial (bench/results/user-trial-3-cpu-intel-xeon-2c-2026-12-06.md)."""

from __future__ import annotations

import pytest

from fastpinn import cli
from fastpinn.run import RunConfig


def test_a_reference_term_under_a_scheme_that_has_none_is_refused(tmp_path, capsys):
    # `fastpinn train ... --scheme pinn --reference-term ic` trained (a run of its own identity) and the option did
    # nothing: only MA, ID, DN and LRA measure the terms against a reference term
    rc = cli.main(["train", "poisson1d", "--scheme", "pinn", "--reference-term", "bc", "--epochs", "2",
                   "--no-progress", "--no-figures", "--out", str(tmp_path / "pinn-ref")])
    assert rc == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "reference_term 'bc' does nothing under scheme 'pinn'" in err and "ma, id, dn, lra" in err
    assert not (tmp_path / "pinn-ref" / "config.json").exists()
    with pytest.raises(ValueError, match="under scheme 'gradnorm-w'"):
        RunConfig(problem="poisson1d", scheme="gradnorm-w", reference_term="bc").validate()
    RunConfig(problem="poisson1d", scheme="lra", reference_term="bc").validate()  # LRA reads it
    # residual-based attention weighs the reference term's points, under any scheme
    RunConfig(problem="poisson1d", scheme="pinn", reference_term="bc", attention={"gamma": 0.999, "eta": 0.01}).validate()


def test_compare_refuses_a_reference_term_on_an_entry_whose_scheme_has_none(tmp_path, capsys):
    rc = cli.main(["compare", "poisson1d", "--schemes", "pinn,dn,pinn+ref=bc", "--epochs", "2", "--seeds", "1",
                   "--no-progress", "--no-figures", "--out", str(tmp_path / "cmp")])
    assert rc == cli.EXIT_USAGE
    assert "does nothing under scheme 'pinn'" in capsys.readouterr().err
    assert not (tmp_path / "cmp" / "pinn").exists()  # refused before anything trained
