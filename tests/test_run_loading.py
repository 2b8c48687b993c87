"""Loading a run never imports code its directory names (issue 16, item 4): a run of a problem file is
loaded only with the file named on the command line (``--problem``), whose SHA-256 must be the run's."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fastpinn import cli
from fastpinn.run import load_run
from user_problem import FAST, PROBLEM_FILE as PROBLEM


def _marking(marker) -> str:
    """Python that leaves ``marker`` behind when imported."""
    return f"open({str(marker)!r}, 'w').write('imported')\n"


@pytest.fixture()
def trained(tmp_path):
    """A finished run of a problem file, ``(run dir, the file, points file)``."""
    problem = tmp_path / "mine.py"
    problem.write_text(PROBLEM)
    out = tmp_path / "myrun"
    assert cli.main(["train", f"{problem}:make_problem", "--out", str(out), *FAST]) == 0
    np.save(tmp_path / "pts.npy", np.linspace(0, 1, 5).reshape(-1, 1))
    return out, problem, tmp_path / "pts.npy"


def _entry_points(out, pts, tmp_path, extra=()):
    vals = tmp_path / "vals.npy"
    np.save(vals, np.zeros(5))
    return {
        "predict": ["predict", str(out), "--points", str(pts), "--out", str(tmp_path / "p.npy"), *extra],
        "evaluate": ["evaluate", str(out), *extra],
        "evaluate --points": ["evaluate", str(out), "--points", str(pts), "--values", str(vals), *extra],
    }


def test_a_run_directory_naming_its_own_code_is_not_imported(trained, tmp_path, capsys):
    """5838b7e: config.json naming myrun/evil.py:make_problem had that file imported by fastpinn predict."""
    out, problem, pts = trained
    marker = tmp_path / "marker"
    evil = out / "evil.py"
    evil.write_text(_marking(marker) + PROBLEM)
    config = json.loads((out / "config.json").read_text())
    config["config"]["problem"] = config["identity"]["problem"] = f"{evil}:make_problem"
    (out / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    for name, argv in _entry_points(out, pts, tmp_path).items():
        assert cli.main(argv) == cli.EXIT_USAGE, name
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--problem" in err and "does not import" in err, (name, err)
    with pytest.raises(ValueError, match="does not import code a run directory names"):
        load_run(out)
    for argv in (["train", "poisson1d", "--out", str(out), *FAST],  # train / resume over that directory
                 ["train", "poisson1d", "--out", str(out), "--resume", *FAST]):
        assert cli.main(argv) == cli.EXIT_USAGE
        capsys.readouterr()
    assert not marker.exists()


def test_the_named_problem_file_must_be_the_one_the_run_recorded(trained, tmp_path, capsys):
    """5838b7e: predict/evaluate used an edited problem file silently (train refused the same edit)."""
    out, problem, pts = trained
    marker = tmp_path / "marker"
    edited = tmp_path / "edited.py"
    edited.write_text(_marking(marker) + PROBLEM.replace("math.pi ** 2", "2.0 * math.pi ** 2"))
    recorded = json.loads((out / "config.json").read_text())["identity"]["problem_file_sha256"]
    capsys.readouterr()
    for name, argv in _entry_points(out, pts, tmp_path, ["--problem", f"{edited}:make_problem"]).items():
        assert cli.main(argv) == cli.EXIT_USAGE, name
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and recorded in err and str(edited) in err, (name, err)
    assert not marker.exists()  # refused before importing it


def test_the_right_file_loads_the_run_from_anywhere(trained, tmp_path, capsys):
    out, problem, pts = trained
    moved = tmp_path / "elsewhere" / "copy.py"
    moved.parent.mkdir()
    shutil.copy(problem, moved)
    assert cli.main(_entry_points(out, pts, tmp_path, ["--problem", f"{moved}:make_problem"])["predict"]) == 0
    assert np.load(tmp_path / "p.npy").shape == (5, 1)
    cfg, _, trainer = load_run(out, problem=f"{moved}:make_problem")
    assert trainer.epoch == 6 and cfg.problem == f"{moved.resolve()}:make_problem"


def test_problem_option_is_only_for_runs_of_a_problem_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "poisson1d", "--n-pde", "16", "--out", str(out), *FAST]) == 0
    np.save(tmp_path / "pts.npy", np.linspace(0, 1, 5).reshape(-1, 1))
    capsys.readouterr()
    argv = ["predict", str(out), "--points", str(tmp_path / "pts.npy"), "--out", str(tmp_path / "p.npy")]
    assert cli.main([*argv, "--problem", f"{tmp_path / 'x.py'}:make_problem"]) == cli.EXIT_USAGE
    assert "built-in problem 'poisson1d'" in capsys.readouterr().err
    assert cli.main(argv) == cli.EXIT_OK  # a built-in problem needs no --problem
