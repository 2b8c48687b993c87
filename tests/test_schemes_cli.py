"""The new schemes through the training stack: the CLI, the run configuration and the Trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastpinn import cli
from fastpinn.trainer import History

TINY = ["--epochs", "12", "--n-pde", "16", "--threads", "1", "--no-progress", "--no-figures", "--eval-every", "4"]


@pytest.mark.parametrize("argv, key, value", [
    (["--scheme", "lra", "--alpha", "0.5", "--tau", "4"], "alpha", 0.5),
    (["--scheme", "gradnorm-w", "--reduce", "mean", "--tau", "4"], "reduce", "mean"),
])
def test_train_new_scheme_ensemble(tmp_path, capsys, argv, key, value):
    out = tmp_path / "run"
    rc = cli.main(["train", "poisson1d", *argv, "--seeds", "2", "--backend", "cpp", "--out", str(out), *TINY])
    capsys.readouterr()
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert config["config"][key] == value and config["identity"][key] == value
    assert "beta" not in config["identity"]  # alpha replaces beta for these schemes
    h = History.load(str(out / "history.npz"))
    w = np.asarray(h.weights)
    assert w.shape[-1] == 2 and np.all(np.isfinite(w))
    assert not np.allclose(w[-1], 1.0)  # the weights moved (updates at epochs 0, 4, 8)


def test_lra_trains_like_ma_wang(tmp_path, capsys):
    """LRA(alpha) is MA(form="wang", beta=1-alpha): the same run, the same weights and losses."""
    runs = {}
    for name, argv in (("lra", ["--scheme", "lra", "--alpha", "0.25"]),
                       ("ma", ["--scheme", "ma", "--ma-form", "wang", "--beta", "0.75"])):
        out = tmp_path / name
        assert cli.main(["train", "poisson1d", *argv, "--tau", "3", "--seed", "1", "--backend", "torch",
                         "--dtype", "float64", "--out", str(out), *TINY]) == 0
        runs[name] = History.load(str(out / "history.npz"))
    capsys.readouterr()
    np.testing.assert_allclose(runs["lra"].weights, runs["ma"].weights, rtol=1e-12, atol=0)
    np.testing.assert_allclose(runs["lra"].losses, runs["ma"].losses, rtol=1e-10, atol=0)


@pytest.mark.parametrize("argv, needle", [
    (["--scheme", "lra", "--alpha", "0"], "alpha"),
    (["--scheme", "gradnorm-w", "--alpha", "1"], "alpha"),
    (["--scheme", "nope"], "--scheme"),
])
def test_bad_scheme_options_one_line(tmp_path, capsys, argv, needle):
    rc = cli.main(["train", "poisson1d", *argv, "--out", str(tmp_path / "x"), *TINY])
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and needle in lines[0]


def test_compare_writes_table_and_figure_and_reuses_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "poisson1d", "--schemes", "dn,lra", "--seeds", "2", "--epochs", "8", "--n-pde", "16",
            "--eval-every", "4", "--threads", "1", "--no-progress", "--backend", "cpp", "--out", str(out)]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out
    rows = (out / "compare.csv").read_text().splitlines()
    assert rows[0].startswith("scheme,label,status,seeds,rel_l2_mean,rel_l2_sem,train_seconds,time_over_pinn")
    assert [r.split(",")[0] for r in rows[1:]] == ["pinn", "dn", "lra"]  # PINN added first: the time baseline
    assert (out / "compare.png").stat().st_size > 0 and "| PINN | 2 |" in stdout
    for name in ("pinn", "dn", "lra"):
        assert np.asarray(History.load(str(out / name / "history.npz")).rel_l2).shape == (2, 2)
    mtime = (out / "dn" / "metrics.json").stat().st_mtime_ns
    assert cli.main(argv) == 0  # finished runs are reused, not retrained
    capsys.readouterr()
    assert (out / "dn" / "metrics.json").stat().st_mtime_ns == mtime


def test_compare_rejects_unknown_scheme(tmp_path, capsys):
    rc = cli.main(["compare", "poisson1d", "--schemes", "dn,bogus", "--out", str(tmp_path / "c"), *TINY])
    _, err = capsys.readouterr()
    assert rc == 2 and "bogus" in err


def test_compare_gives_a_scheme_option_to_the_schemes_that_read_it(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "poisson1d", "--schemes", "softadapt", "--temperature", "5", "--seeds", "1", "--epochs", "4",
            "--n-pde", "16", "--eval-every", "2", "--threads", "1", "--no-progress", "--no-figures",
            "--backend", "torch", "--out", str(out)]
    assert cli.main(argv) == 0
    assert "| SoftAdapt (T=5) | 1 |" in capsys.readouterr().out
    assert json.loads((out / "softadapt" / "config.json").read_text())["identity"]["temperature"] == 5.0
    assert "temperature" not in json.loads((out / "pinn" / "config.json").read_text())["identity"]
    # an option none of the schemes reads: one line, nothing trained
    rc = cli.main([*argv[:3], "dn,lra", *argv[4:6], *argv[6:-1], str(tmp_path / "other")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and "--temperature is not an option of schemes dn, lra" in err[0]
    assert not (tmp_path / "other").exists()
