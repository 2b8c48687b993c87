"""What the user trial of 2026-12-06 found on the command line (bench/results/user-trial-*.md): an inverse
problem's learned coefficients in `train`'s summary line and `compare`'s table, and the weight watcher's
reports as plain `warning:` lines without a progress bar."""

from __future__ import annotations

import csv
import textwrap

import pytest

from fastpinn import cli

FAST = ["--epochs", "6", "--eval-every", "3", "--no-figures", "--no-progress", "--compile", "off", "--threads", "1",
        "--backend", "torch"]

PROBLEM_FILE = textwrap.dedent('''
    import math, torch
    from fastpinn import Problem, pde, data, initial, dirichlet, sampling

    def decay(seed=0, n_pde=16):
        """u' = -k u, u(0) = 1, k = 2 learned from 0.5 and observations of exp(-2 t)."""
        gen = torch.Generator().manual_seed(seed)
        t = sampling.uniform(n_pde, [0.0], [1.0], gen)
        t_obs = torch.linspace(0, 1, 8, dtype=torch.float64).reshape(-1, 1)
        def residual(f):
            return f["u_t"][..., 0] + f.coef["k"] * f["u"][..., 0]
        def solution():
            return t_obs.numpy(), torch.exp(-2 * t_obs[:, 0]).numpy()
        return Problem(name="decay", coords=("t",), lower=(0.0,), upper=(1.0,),
                       terms=[pde("ode", t, residual, ("u", "u_t")),
                              initial("ic", torch.zeros(1, 1, dtype=torch.float64), 1.0),
                              data("obs", t_obs, torch.exp(-2 * t_obs[:, 0]))],
                       depth=2, width=8, solution=solution, seeds=(seed,), coefficients={"k": 0.5})

    def collapsing(seed=0, n_pde=16):
        """A boundary residual scaled by 1e4: DN's weight on it collapses at the first evaluation."""
        gen = torch.Generator().manual_seed(seed)
        x = sampling.uniform(n_pde, [0.0], [1.0], gen)
        def residual(f):
            return f["u_xx"][..., 0] + math.pi ** 2 * torch.sin(math.pi * f.x[..., 0])
        return Problem(name="collapsing", coords=("x",), lower=(0.0,), upper=(1.0,),
                       terms=[pde("pde", x, residual, "u_xx"),
                              pde("bc", torch.tensor([[0.0], [1.0]], dtype=torch.float64),
                                  lambda f: 1e4 * f["u"][..., 0], "u")],
                       depth=2, width=4, seeds=(seed,))
''')


@pytest.fixture()
def problem_file(tmp_path):
    path = tmp_path / "trial.py"
    path.write_text(PROBLEM_FILE)
    return path


def test_train_names_the_learned_coefficients_in_its_summary_line(problem_file, tmp_path, capsys):
    # The summary line said only "rel. L2 = ...": an inverse problem's answer was in metrics.json alone.
    assert cli.main(["train", f"{problem_file}:decay", "--seeds", "2", "--out", str(tmp_path / "run"), *FAST]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "; learned k = " in last and last.count("/") >= 1  # one value per seed
    values = last.split("learned k = ")[1].split(";")[0].split(" / ")
    assert len(values) == 2 and all(abs(float(v) - 0.5) < 0.1 for v in values)  # 6 epochs: near the start


def test_compare_tables_the_learned_coefficients(problem_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli.main(["compare", f"{problem_file}:decay", "--schemes", "dn", "--seeds", "2", "--out", str(out),
                     *FAST]) == 0
    with open(out / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["scheme"] for r in rows] == ["pinn", "dn"]
    assert all(abs(float(r["coef_k"]) - 0.5) < 0.1 for r in rows)
    md = (out / "compare.md").read_text()
    assert "| k (mean) |" in md.splitlines()[0]
    assert all(line.count("|") == md.splitlines()[0].count("|") for line in md.splitlines()[:4])


def test_a_plain_problem_has_no_coefficient_columns(problem_file, tmp_path):
    out = tmp_path / "cmp"
    assert cli.main(["compare", f"{problem_file}:collapsing", "--schemes", "dn", "--seeds", "1", "--out", str(out),
                     *FAST]) == 0
    assert "coef_" not in (out / "compare.csv").read_text() and "(mean) |" not in (out / "compare.md").read_text()


def test_weight_reports_without_a_progress_bar_are_plain_warning_lines(problem_file, tmp_path, capsys):
    # They were printed as "/.../fastpinn/trainer.py:477: WeightWarning: ..." followed by fastpinn's source line.
    assert cli.main(["train", f"{problem_file}:collapsing", "--scheme", "dn", "--beta", "0", "--tau", "1",
                     "--out", str(tmp_path / "run"), *FAST]) == 0
    err = capsys.readouterr().err.splitlines()
    reports = [line for line in err if "collapsed" in line]
    assert len(reports) == 1 and reports[0].startswith("warning: λ_bc collapsed to")
    assert not any("WeightWarning" in line or "self._train" in line for line in err)


def test_compare_says_when_the_winner_is_within_the_standard_error_of_the_runner_up(problem_file, tmp_path, capsys):
    # The trial's default compare on Poisson-Robin named "Best: GradNormW (rel. L2 1.03e-01 ± 9.8e-02)" over
    # PINN's 1.16e-01 ± 1.1e-01 without a word that three seeds cannot tell them apart.
    out = tmp_path / "cmp"
    assert cli.main(["compare", f"{problem_file}:decay", "--schemes", "dn", "--seeds", "2", "--out", str(out),
                     *FAST]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    with open(out / "compare.csv", newline="") as f:
        best, second = sorted(csv.DictReader(f), key=lambda r: int(r["rank"]))
    gap = float(second["rel_l2_mean"]) - float(best["rel_l2_mean"])
    assert 0 <= gap <= (float(best["rel_l2_sem"]) ** 2 + float(second["rel_l2_sem"]) ** 2) ** 0.5  # a tie here
    assert f", not distinguishable from {second['label']} (" in last
    assert last.split("train it with: ")[1].startswith("fastpinn train ")  # the command stays the last clause
