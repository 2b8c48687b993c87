"""The command line on a user's own problem file, and predict / evaluate on a trained run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fastpinn import cli
from fastpinn.trainer import History
from user_problem import FAST, PROBLEM_FILE


@pytest.fixture()
def problem_file(tmp_path):
    path = tmp_path / "my_pde.py"
    path.write_text(PROBLEM_FILE)
    return path


def test_train_a_problem_from_the_users_file_then_predict_and_evaluate(problem_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", f"{problem_file}:make_problem", "--seeds", "2", "--n-pde", "24", "--out", str(out),
                     *FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["problem"] == f"{problem_file.resolve()}:make_problem"
    assert len(config["identity"]["problem_file_sha256"]) == 64
    h = History.load(str(out / "history.npz"))
    assert h.losses.shape == (6, 2, 2)
    assert h.rel_l2.shape == (2, 2) and not np.allclose(h.rel_l2[:, 0], h.rel_l2[:, 1])  # two seeds differ
    capsys.readouterr()

    pts = np.linspace(0, 1, 9).reshape(-1, 1)
    np.save(tmp_path / "pts.npy", pts)
    mine = ["--problem", f"{problem_file}:make_problem"]  # fastpinn imports no file a run directory names
    assert cli.main(["predict", str(out), "--points", str(tmp_path / "pts.npy"), "--out", str(tmp_path / "p.npy"),
                     *mine]) == 0
    pred = np.load(tmp_path / "p.npy")
    assert pred.shape == (2, 9, 1)
    # the same numbers as the trainer in memory would give from the checkpoint
    from fastpinn.experiments import load_run

    _, _, trainer = load_run(out, problem=f"{problem_file}:make_problem")
    np.testing.assert_allclose(pred, trainer.predict(torch.as_tensor(pts)).double().numpy(), rtol=0, atol=0)
    np.savetxt(tmp_path / "pts.csv", pts, delimiter=",", header="x", comments="")
    assert cli.main(["predict", str(out), "--points", str(tmp_path / "pts.csv"), "--member", "1",
                     "--out", str(tmp_path / "p.csv"), *mine]) == 0
    np.testing.assert_allclose(np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1), pred[1, :, 0], rtol=1e-12)

    capsys.readouterr()
    assert cli.main(["evaluate", str(out), *mine]) == 0
    grid = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(grid["rel_l2_per_seed"], h.rel_l2[-1], rtol=1e-12)
    np.save(tmp_path / "vals.npy", np.sin(np.pi * pts[:, 0]))
    assert cli.main(["evaluate", str(out), "--points", str(tmp_path / "pts.npy"), "--values",
                     str(tmp_path / "vals.npy"), "--out", str(tmp_path / "e.json"), *mine]) == 0
    given = json.loads((tmp_path / "e.json").read_text())
    assert given["on"] == "9 given points" and len(given["rel_l2_per_seed"]) == 2


def test_user_file_errors_are_one_line_with_exit_2(problem_file, tmp_path, capsys):
    cases = [
        (f"{tmp_path / 'missing.py'}:make_problem", "does not exist"),
        (f"{problem_file}:nothing_here", "has no function 'nothing_here'"),
        (f"{problem_file}:not_a_problem", "must return a fastpinn.Problem, got int"),
    ]
    for spec, message in cases:
        assert cli.main(["train", spec, "--out", str(tmp_path / "x"), *FAST]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert cli.main(["train", f"{problem_file}:no_seed", "--seeds", "2", "--out", str(tmp_path / "y"), *FAST]) == 2
    assert "takes no seed argument" in capsys.readouterr().err


def test_predict_refuses_bad_points_and_missing_runs(problem_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", f"{problem_file}:make_problem", "--out", str(out), *FAST]) == 0
    np.save(tmp_path / "wide.npy", np.zeros((3, 2)))
    capsys.readouterr()
    assert cli.main(["predict", str(out), "--points", str(tmp_path / "wide.npy"), "--out",
                     str(tmp_path / "p.npy"), "--problem", f"{problem_file}:make_problem"]) == 2
    assert "must have shape [M, 1], got [3, 2]" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path), "--points", str(tmp_path / "wide.npy"), "--out",
                     str(tmp_path / "p.npy")]) == 2
    assert "holds no fastpinn run" in capsys.readouterr().err


def test_train_with_a_broken_torchrun_environment_fails_before_writing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    assert cli.main(["train", "poisson1d", "--out", str(tmp_path / "x"), *FAST]) == 4
    err = capsys.readouterr().err
    assert "[rank 0/2]" in err and "cannot join the torchrun process group" in err, err
    assert not (tmp_path / "x").exists()