"""``fastpinn compare FILE.py:FUNCTION``: the schemes ranked on a user's own problem, the winner named with the
command that trains it, finished runs reused only while the problem file is unchanged."""

from __future__ import annotations

import csv
import json
import shlex

import pytest

from fastpinn import cli
from fastpinn.run import RunConfig
from fastpinn.run.compare import train_command
from user_problem import PROBLEM_FILE

FAST = ["--epochs", "6", "--eval-every", "3", "--n-pde", "16", "--no-progress", "--compile", "off", "--threads", "1",
        "--backend", "torch"]


@pytest.fixture()
def problem_file(tmp_path):
    path = tmp_path / "my_pde.py"
    path.write_text(PROBLEM_FILE)
    return path


def _csv(out):
    with open(out / "compare.csv", newline="") as f:
        return list(csv.DictReader(f))


def _identity(run_dir):
    return json.loads((run_dir / "config.json").read_text())["identity"]


def test_compare_ranks_the_schemes_on_a_user_file_and_the_winner_command_trains_the_same_run(problem_file, tmp_path,
                                                                                            capsys):
    out = tmp_path / "cmp"
    problem = f"{problem_file}:make_problem"
    assert cli.main(["compare", problem, "--schemes", "dn,lra", "--seeds", "2", "--out", str(out), *FAST]) == 0
    stdout = capsys.readouterr().out.strip().splitlines()

    rows = _csv(out)
    assert [r["scheme"] for r in rows] == ["pinn", "dn", "lra"]  # training order, PINN (the time baseline) first
    by_rank = sorted(rows, key=lambda r: int(r["rank"]))
    means = [float(r["rel_l2_mean"]) for r in by_rank]
    assert means == sorted(means) and len(set(means)) == 3  # best first; three different runs
    for r in rows:  # the spread over the two seeds
        assert float(r["rel_l2_min"]) <= float(r["rel_l2_mean"]) <= float(r["rel_l2_max"])
        assert float(r["rel_l2_min"]) < float(r["rel_l2_max"]) and r["seeds"] == "2"
    md = (out / "compare.md").read_text().splitlines()
    table = [line for line in md if line.startswith("| ") and line[2].isdigit()]
    assert [line.split(" | ")[1] for line in table] == [r["label"] for r in by_rank]
    assert (out / "compare.png").stat().st_size > 0
    for name in ("pinn", "dn", "lra"):
        assert len(_identity(out / name)["problem_file_sha256"]) == 64

    winner = by_rank[0]
    last = stdout[-1]
    assert last == md[-1] and last.startswith(f"Best: {winner['label']} (rel. L2 ")
    command = shlex.split(last.split("train it with: ")[1])
    assert command[:5] == ["fastpinn", "train", problem, "--scheme", winner["scheme"]]
    assert command[command.index("--seeds") + 1] == "2" and command[command.index("--epochs") + 1] == "6"
    # the command trains the winner's configuration: the same run identity as compare's run
    assert cli.main([*command[1:], "--out", str(tmp_path / "winner"), "--no-figures", *FAST]) == 0
    capsys.readouterr()
    assert _identity(tmp_path / "winner") == _identity(out / winner["scheme"])
    # and so would every other scheme's (DN: compare's beta 0.9 is not train's default 0.99)
    for name in ("pinn", "dn", "lra"):
        cfg = RunConfig.from_dict(json.loads((out / name / "config.json").read_text())["config"])
        words = shlex.split(train_command(problem, cfg))
        assert ("--beta" in words) == (name == "dn")
        assert cli.main([*words[1:], "--out", str(tmp_path / f"train-{name}"), "--no-figures", *FAST]) == 0
        assert _identity(tmp_path / f"train-{name}") == _identity(out / name)
    capsys.readouterr()


def test_train_command_states_what_differs_from_train_defaults():
    cfg = RunConfig(problem="poisson1d", scheme="dn", seeds=(0, 1, 2), ensemble=True, epochs=50, lr=1e-2,
                    problem_kwargs={"n_pde": 16}, width=12, optimizer="adam+lbfgs", lbfgs_iters=5)
    words = shlex.split(train_command("poisson1d", cfg))
    # compare runs DN at the paper's beta 0.9, train's default is 0.99: the command must say so
    assert words[:5] == ["fastpinn", "train", "poisson1d", "--scheme", "dn"]
    for option, value in (("--beta", "0.9"), ("--seeds", "3"), ("--epochs", "50"), ("--n-pde", "16"),
                          ("--lr", "0.01"), ("--width", "12"), ("--optimizer", "adam+lbfgs"), ("--lbfgs-iters", "5")):
        assert words[words.index(option) + 1] == value
    assert "--depth" not in words and "--activation" not in words
    pinn = shlex.split(train_command("f.py:g", RunConfig(problem="f.py:g", scheme="pinn")))
    assert pinn == ["fastpinn", "train", "f.py:g", "--scheme", "pinn"]


def test_compare_reuses_runs_until_the_problem_file_changes(problem_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", f"{problem_file}:make_problem", "--schemes", "dn", "--seeds", "2", "--no-figures",
            "--out", str(out), *FAST]
    assert cli.main(argv) == 0
    capsys.readouterr()
    mtime = (out / "dn" / "metrics.json").stat().st_mtime_ns
    digest = _identity(out / "dn")["problem_file_sha256"]

    assert cli.main(argv) == 0  # unchanged file: reused, not retrained
    assert "dn: reusing" in capsys.readouterr().err
    assert (out / "dn" / "metrics.json").stat().st_mtime_ns == mtime

    problem_file.write_text(PROBLEM_FILE.replace("+ math.pi ** 2", "+ 0.5 * math.pi ** 2"))
    assert cli.main(argv) == 0  # an edited file: retrained, and the log says why
    err = capsys.readouterr().err
    assert "dn: not reusing" in err and "problem file changed" in err
    assert (out / "dn" / "metrics.json").stat().st_mtime_ns != mtime
    assert _identity(out / "dn")["problem_file_sha256"] != digest


def test_compare_a_function_without_seed_trains_one_seed_and_refuses_more(problem_file, tmp_path, capsys):
    problem = f"{problem_file}:no_seed"
    out = tmp_path / "cmp"
    assert cli.main(["compare", problem, "--schemes", "pinn", "--no-figures", "--out", str(out), *FAST]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert [r["seeds"] for r in _csv(out)] == ["1"] and _identity(out / "pinn")["seeds"] == [0]
    assert "--seeds" not in last and f"train {problem} --scheme pinn" in last

    rc = cli.main(["compare", problem, "--seeds", "3", "--out", str(tmp_path / "other"), *FAST])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and "seeds must be 1" in err[0] and "no seed argument" in err[0]
    assert not (tmp_path / "other").exists()


def test_a_diverged_scheme_is_a_row_not_the_end_of_the_comparison(problem_file, tmp_path, capsys):
    # 1e30 * u_xx overflows float32 in the first loss: every run diverges at epoch 0
    blows = problem_file.parent / "blows.py"
    blows.write_text(PROBLEM_FILE.replace("return f[\"u_xx\"][..., 0] +", "return 1e30 * f[\"u_xx\"][..., 0] +"))
    out = tmp_path / "cmp"
    rc = cli.main(["compare", f"{blows}:make_problem", "--schemes", "dn", "--seeds", "2", "--no-figures",
                   "--out", str(out), *FAST])
    captured = capsys.readouterr()
    assert rc == cli.EXIT_DIVERGED  # no scheme finished: no winner
    assert [(r["scheme"], r["status"]) for r in _csv(out)] == [("pinn", "diverged"), ("dn", "diverged")]
    assert captured.out.strip().splitlines()[-1].startswith("No scheme finished")
    assert "dn: diverged" in captured.err


def test_compare_trains_remedies_as_rows_and_their_train_commands_reproduce_them(problem_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    problem = f"{problem_file}:make_problem"
    entries = "dn+clamp,dn+warmup,dn+beta=0.99+ref=bc"
    assert cli.main(["compare", problem, "--schemes", entries, "--seeds", "2", "--out", str(out), *FAST]) == 0
    capsys.readouterr()
    rows = _csv(out)
    assert [r["scheme"] for r in rows] == ["pinn", "dn+clamp", "dn+warmup", "dn+beta=0.99+ref=bc"]
    labels = {r["scheme"]: r["label"] for r in rows}
    assert "λ_min=0.01" in labels["dn+clamp"] and "λ_max=100" in labels["dn+clamp"]
    assert "warm-up=2" in labels["dn+warmup"]  # a third of the 6 epochs
    assert "β=0.99" in labels["dn+beta=0.99+ref=bc"] and labels["dn+beta=0.99+ref=bc"].endswith("reference term bc")
    ident = {r["scheme"]: _identity(out / r["scheme"]) for r in rows}
    assert (ident["dn+clamp"]["weight_min"], ident["dn+clamp"]["weight_max"]) == (0.01, 100.0)
    assert ident["dn+warmup"]["weight_warmup"] == 2 and ident["dn+beta=0.99+ref=bc"]["reference_term"] == "bc"
    assert len({json.dumps(i, sort_keys=True) for i in ident.values()}) == 4  # four different runs
    hist = __import__("fastpinn").history.History.load(str(out / "dn+warmup" / "history.npz"))
    assert (hist.weights[:2] == 1).all()  # held at 1 during the warm-up
    for name in ("dn+clamp", "dn+warmup", "dn+beta=0.99+ref=bc"):  # each row's train command trains that run
        cfg = RunConfig.from_dict(json.loads((out / name / "config.json").read_text())["config"])
        words = shlex.split(train_command(problem, cfg))
        assert cli.main([*words[1:], "--out", str(tmp_path / "t"), "--force", "--no-figures", *FAST]) == 0
        assert _identity(tmp_path / "t") == ident[name]
    capsys.readouterr()


@pytest.mark.parametrize("entry, words", [("pinn+clamp", ("no remedy 'clamp'", "pinn")),
                                          ("dn+cramp", ("'cramp' must be one of the remedies", "clamp")),
                                          ("dn+beta=high", ("beta='high' is not a float",)),
                                          ("dnn", ("schemes must be among",))])
def test_compare_refuses_a_bad_entry_in_one_line(problem_file, tmp_path, capsys, entry, words):
    rc = cli.main(["compare", f"{problem_file}:make_problem", "--schemes", entry, "--out", str(tmp_path / "c"), *FAST])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and all(w in err[0] for w in words), err
    assert not (tmp_path / "c").exists()
