"""Bad input on the command line, as a table: every case exits with its documented status (2: bad argument,
3: filesystem or environment fault), prints one line on stderr that names the option (or the file), and no
traceback.

The cases run in-process (``fastpinn.cli.main``; an exception escaping it fails the case with its traceback),
each with a fresh ``--out`` so that no case is refused for an unrelated reason; the environment variables run
once more as real ``python -m fastpinn`` processes. Nothing here trains: every case must be refused before.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fastpinn import cli

BIG = str(2**63)  # a size torch cannot hold: used to end in an OverflowError / TypeError traceback
TRAIN = ["train", "poisson1d", "--epochs", "2", "--n-pde", "16", "--no-progress", "--no-figures", "--compile", "off",
         "--backend", "torch"]
PREDICT = ["predict", "{run}", "--out", "{tmp}/p.csv"]
USAGE, ENVIRONMENT = cli.EXIT_USAGE, cli.EXIT_ENVIRONMENT

# (argv, exit status, a regex the one stderr line must match: the option or file it is about)
CASES = [
    # train: numbers
    (TRAIN + ["--epochs", "abc"], USAGE, "--epochs"),
    (TRAIN + ["--epochs", "0"], USAGE, "epochs"),
    (TRAIN + ["--epochs", "-1"], USAGE, "epochs"),
    (TRAIN + ["--epochs", BIG], USAGE, "--epochs"),
    (TRAIN + ["--seeds", "0"], USAGE, "seeds"),
    (TRAIN + ["--seeds", BIG], USAGE, "--seeds"),
    (TRAIN + ["--seed", "-1"], USAGE, "seed"),
    (TRAIN + ["--seed", BIG], USAGE, "--seed"),
    (TRAIN + ["--beta", "1.5"], USAGE, "beta"),
    (TRAIN + ["--beta", "nan"], USAGE, "beta"),
    (TRAIN + ["--beta", "abc"], USAGE, "--beta"),
    (TRAIN + ["--tau", "0"], USAGE, "tau"),
    (TRAIN + ["--tau", BIG], USAGE, "--tau"),
    (TRAIN + ["--p", "0.5"], USAGE, r"\bp\b"),
    (TRAIN + ["--p", "nan"], USAGE, r"\bp\b"),
    (TRAIN + ["--p", "abc"], USAGE, "--p"),
    (TRAIN + ["--lr", "0"], USAGE, "lr"),
    (TRAIN + ["--lr", "nan"], USAGE, "lr"),
    (TRAIN + ["--lr", "inf"], USAGE, "lr"),
    (TRAIN + ["--eval-every", "0"], USAGE, "eval.every"),
    (TRAIN + ["--eval-every", BIG], USAGE, "--eval-every"),
    (TRAIN + ["--checkpoint-every", "0"], USAGE, "--checkpoint-every"),
    (TRAIN + ["--checkpoint-every", BIG], USAGE, "--checkpoint-every"),
    (TRAIN + ["--checkpoint-seconds", "-1"], USAGE, "--checkpoint-seconds"),
    (TRAIN + ["--checkpoint-seconds", "nan"], USAGE, "--checkpoint-seconds"),
    (TRAIN + ["--n-pde", "0"], USAGE, "n.pde"),
    (TRAIN + ["--n-pde", "-5"], USAGE, "n.pde"),
    (TRAIN + ["--n-pde", BIG], USAGE, "--n-pde"),
    (TRAIN + ["--n-bc", "10"], USAGE, "n.bc"),
    (TRAIN + ["--threads", "-1"], USAGE, "--threads"),
    (TRAIN + ["--threads", "abc"], USAGE, "--threads"),
    (TRAIN + ["--threads", BIG], USAGE, "--threads"),
    (TRAIN + ["--patience", "0"], USAGE, "patience"),
    (TRAIN + ["--patience", BIG], USAGE, "--patience"),
    (TRAIN + ["--scheme", "softadapt", "--temperature", "0"], USAGE, "temperature"),
    (TRAIN + ["--scheme", "lra", "--alpha", "2"], USAGE, "alpha"),
    # train: choices, problems, paths
    (TRAIN + ["--scheme", "bogus"], USAGE, "--scheme"),
    (TRAIN + ["--dtype", "float16"], USAGE, "--dtype"),
    (TRAIN + ["--backend", "bogus"], USAGE, "--backend"),
    (TRAIN + ["--device", "bogus"], USAGE, "device"),
    # train/compare: optimizer, schedule and network options (issue 17)
    (TRAIN + ["--optimizer", "bfgs"], USAGE, "--optimizer"),
    (TRAIN + ["--optimizer", "adam+lbfgs", "--lbfgs-iters", "0"], USAGE, "lbfgs_iters"),
    (TRAIN + ["--lbfgs-iters", BIG], USAGE, "--lbfgs-iters"),
    (TRAIN + ["--optimizer", "lbfgs"], USAGE, "epochs.*lbfgs_iters"),
    (TRAIN + ["--lr-schedule", "exp:2"], USAGE, "lr_schedule.*exp:GAMMA"),
    (TRAIN + ["--lr-schedule", "step:0:0.5"], USAGE, "lr_schedule"),
    (TRAIN + ["--lr-schedule", "linear"], USAGE, "lr_schedule"),
    (TRAIN + ["--depth", "0"], USAGE, "depth"),
    (TRAIN + ["--width", "-3"], USAGE, "width"),
    (TRAIN + ["--width", BIG], USAGE, "--width"),
    (TRAIN + ["--activation", "bogus"], USAGE, "--activation"),
    (["compare", "poisson1d", "--optimizer", "bogus"], USAGE, "--optimizer"),
    (["compare", "poisson1d", "--lr-schedule", "exp"], USAGE, "lr_schedule"),
    (["compare", "poisson1d", "--depth", "0"], USAGE, "depth"),
    (TRAIN + ["--device", "cpu:abc"], USAGE, "device"),
    (TRAIN + ["--device", ""], USAGE, "device"),
    (TRAIN + ["--step-mode", "cuda_graph"], USAGE, "step_mode"),
    (["train", "nosuch"], USAGE, "problem"),
    (["train", "poisson1d:f"], USAGE, "problem"),
    (["train", "{tmp}/missing.py:f"], USAGE, "missing.py"),
    (["train", "{tmp}/raises.py:make"], USAGE, "raises.py:make.*RuntimeError: boom"),
    (["train", "{tmp}/raises.py:other"], USAGE, "raises.py.*other"),
    (["train", "{tmp}/syntax.py:make"], USAGE, "syntax.py.*SyntaxError"),
    (["train", "{tmp}/number.py:make"], USAGE, "number.py:make.*must return a fastpinn.Problem"),
    (["train", "poisson1d", "--resume", "--no-out"], USAGE, "--resume"),
    (TRAIN + ["--out", "{tmp}/afile"], ENVIRONMENT, "afile"),
    # compare
    (["compare", "bogus"], USAGE, "problem"),
    (["compare", "poisson1d", "--schemes", "bogus"], USAGE, "schemes"),
    (["compare", "poisson1d", "--schemes", ","], USAGE, "--schemes"),
    (["compare", "poisson1d", "--seeds", "0"], USAGE, "seeds"),
    (["compare", "poisson1d", "--seeds", BIG], USAGE, "--seeds"),
    (["compare", "poisson1d", "--epochs", "0"], USAGE, "epochs"),
    (["compare", "poisson1d", "--n-pde", "0"], USAGE, "n.pde"),
    # reproduce
    (["reproduce", "bogus"], USAGE, "table"),
    (["reproduce", "table2", "--seeds", "0"], USAGE, "seeds"),
    (["reproduce", "table2", "--seeds", BIG], USAGE, "--seeds"),
    (["reproduce", "table2", "--shard", "3/2"], USAGE, "shard"),
    (["reproduce", "table2", "--shard", "abc"], USAGE, "shard"),
    (["reproduce", "table2", "--seeds-per-run", "0"], USAGE, "seeds.per.run"),
    (["reproduce", "table2", "--epochs", "-1"], USAGE, "epochs"),
    (["reproduce", "table2", "--problem", "bogus"], USAGE, "--problem"),
    (["reproduce", "table2", "--checkpoint-every", "0"], USAGE, "--checkpoint-every"),
    (["reproduce", "demo", "--epochs", "0"], USAGE, "epochs"),
    # demo: validated like train (it used to replace 0 by its default and train 3000 epochs)
    (["demo", "--epochs", "0"], USAGE, "epochs"),
    (["demo", "--epochs", "-1"], USAGE, "epochs"),
    (["demo", "--epochs", BIG], USAGE, "--epochs"),
    (["demo", "--n-pde", "0"], USAGE, "n.pde"),
    (["demo", "--n-pde", BIG], USAGE, "--n-pde"),
    (["demo", "--n-bc", "0"], USAGE, "n.bc"),
    (["demo", "--beta", "1"], USAGE, "beta"),
    (["demo", "--seed", "-1"], USAGE, "seed"),
    (["demo", "--seed", BIG], USAGE, "--seed"),
    (["demo", "--eval-every", "0"], USAGE, "eval.every"),
    (["demo", "--threads", "-1"], USAGE, "--threads"),
    (["demo", "--device", "bogus"], USAGE, "device"),
    # predict: runs, point files, outputs
    (["predict", "{tmp}/nodir", "--points", "{tmp}/pts.csv", "--out", "{tmp}/p.csv"], USAGE, "nodir"),
    (["predict", "{tmp}/afile", "--points", "{tmp}/pts.csv", "--out", "{tmp}/p.csv"], USAGE, "afile"),
    (PREDICT + ["--points", "{tmp}/missing.csv"], ENVIRONMENT, "missing.csv"),
    (PREDICT + ["--points", "{tmp}/afile"], USAGE, "points"),
    (PREDICT + ["--points", "{tmp}/empty.csv"], USAGE, "points.*empty.csv"),
    (PREDICT + ["--points", "{tmp}/header.csv"], USAGE, "points.*header.csv"),
    (PREDICT + ["--points", "{tmp}/mixed.csv"], USAGE, "points.*mixed.csv"),
    (PREDICT + ["--points", "{tmp}/ragged.csv"], USAGE, "points.*ragged.csv"),
    (PREDICT + ["--points", "{tmp}/wide.csv"], USAGE, "points.*wide.csv"),
    (PREDICT + ["--points", "{tmp}/nan.csv"], USAGE, "points.*nan.csv"),
    (PREDICT + ["--points", "{tmp}/text.npy"], USAGE, "points.*text.npy"),
    (PREDICT + ["--points", "{tmp}/empty.npy"], USAGE, "points.*empty.npy"),
    (PREDICT + ["--points", "{tmp}/complex.npy"], USAGE, "points.*complex.npy.*real numbers"),
    (PREDICT + ["--points", "{tmp}/strings.npy"], USAGE, "points.*strings.npy.*real numbers"),
    (["predict", "{run}", "--points", "{tmp}/pts.csv", "--out", "{tmp}/p.txt"], USAGE, "output.*p.txt"),
    (["predict", "{run}", "--points", "{tmp}/pts.csv", "--out", "{tmp}/afile/p.csv"], ENVIRONMENT, "afile"),
    (PREDICT + ["--points", "{tmp}/pts.csv", "--member", "5"], USAGE, "--member"),
    (PREDICT + ["--points", "{tmp}/pts.csv", "--member", BIG], USAGE, "--member"),
    (PREDICT + ["--points", "{tmp}/pts.csv", "--device", "bogus"], USAGE, "device"),
    # evaluate
    (["evaluate", "{run}", "--points", "{tmp}/pts.csv"], USAGE, "--values"),
    (["evaluate", "{run}", "--points", "{tmp}/pts.csv", "--values", "{tmp}/three.csv"], USAGE, "values"),
    (["evaluate", "{run}", "--points", "{tmp}/pts.csv", "--values", "{tmp}/empty.csv"], USAGE, "values"),
    (["evaluate", "{run}", "--points", "{tmp}/wide.csv", "--values", "{tmp}/three.csv"], USAGE, "points"),
    (["evaluate", "{tmp}/nodir"], USAGE, "nodir"),
    (["evaluate", "{tmp}/config-empty"], USAGE, "problem"),
    (["evaluate", "{tmp}/config-list"], USAGE, "config-list.*no readable config.json"),
    (["evaluate", "{tmp}/config-kwargs"], USAGE, "configuration"),
    (["evaluate", "{tmp}/config-p"], USAGE, "configuration"),
    (["evaluate", "{run}", "--out", "{tmp}/afile/x.json"], ENVIRONMENT, "afile"),
    (["evaluate", "{run}", "--device", "bogus"], USAGE, "device"),
]
# the environment variables: (variable, value, exit status, regex)
ENV_CASES = [
    ("FASTPINN_THREADS", "abc", ENVIRONMENT, "FASTPINN_THREADS"),
    ("FASTPINN_THREADS", "0", ENVIRONMENT, "FASTPINN_THREADS"),
    ("FASTPINN_THREADS", "-1", ENVIRONMENT, "FASTPINN_THREADS"),
    ("FASTPINN_THREADS", BIG, ENVIRONMENT, "FASTPINN_THREADS"),
    ("RANK", "x", USAGE, "RANK"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A trained tiny run (``run/``) and the bad files the cases name."""
    tmp = tmp_path_factory.mktemp("bad-inputs")
    assert cli.main(TRAIN + ["--epochs", "4", "--eval-every", "2", "--out", str(tmp / "run")]) == 0
    (tmp / "pts.csv").write_text("0.25\n0.5\n")
    (tmp / "three.csv").write_text("1\n2\n3\n")
    (tmp / "empty.csv").write_text("")
    (tmp / "header.csv").write_text("x\n")
    (tmp / "mixed.csv").write_text("x,1\n2,3\n")
    (tmp / "ragged.csv").write_text("1\n2,3\n")
    (tmp / "wide.csv").write_text("1,2\n3,4\n")
    (tmp / "nan.csv").write_text("nan\n")
    (tmp / "text.npy").write_text("not an array\n")
    (tmp / "afile").write_text("a file, not a directory\n")
    (tmp / "raises.py").write_text("def make(seed=0):\n    raise RuntimeError('boom')\n")
    (tmp / "syntax.py").write_text("def make(:\n")
    (tmp / "number.py").write_text("def make(seed=0):\n    return 3\n")
    import numpy as np

    np.save(tmp / "empty.npy", np.zeros((0, 1)))
    np.save(tmp / "complex.npy", np.array([[0.5 + 1j]]))  # was cast to 0.5 with a warning
    np.save(tmp / "strings.npy", np.array([["0.5"]]))
    for name, config in [("empty", {}), ("list", []), ("kwargs", {"problem": "poisson1d", "problem_kwargs": [1]}),
                         ("p", {"problem": "poisson1d", "p": {}})]:  # a damaged or edited config.json
        shutil.copytree(tmp / "run", tmp / f"config-{name}")
        (tmp / f"config-{name}" / "config.json").write_text(json.dumps({"config": config}))
    return tmp


def _one_line(err: str, code: int) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0] == lines[-1], err
    if code == USAGE:  # refused before any work: nothing else was said
        assert len(lines) == 1, err
    return lines[-1]


def test_the_cases_start_from_a_good_invocation(files, capsys):
    # so that each case fails for the one thing it changes
    assert cli.main(["predict", str(files / "run"), "--points", str(files / "pts.csv"), "--out",
                     str(files / "p.csv")]) == 0
    assert cli.main(["evaluate", str(files / "run")]) == 0
    assert "error" not in capsys.readouterr().err


@pytest.mark.parametrize("argv,code,names", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_bad_invocation_is_one_line_and_its_exit_status(argv, code, names, files, tmp_path, capsys):
    argv = [a.format(tmp=files, run=files / "run") for a in argv]
    if "--no-out" in argv:  # a case about a missing --out
        argv.remove("--no-out")
    elif argv[0] in ("train", "compare", "reproduce", "demo") and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    capsys.readouterr()
    assert cli.main(argv) == code, capsys.readouterr().err
    line = _one_line(capsys.readouterr().err, code)
    assert re.search(names, line), line
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize("var,value,code,names", ENV_CASES, ids=[f"{c[0]}={c[1]}" for c in ENV_CASES])
def test_bad_environment_variable(var, value, code, names, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(var, value)
    monkeypatch.setenv("WORLD_SIZE", "1")
    out = tmp_path / "out"
    assert cli.main(TRAIN + ["--out", str(out)]) == code
    line = _one_line(capsys.readouterr().err, code)
    assert re.search(names, line), line
    assert not out.exists()


def test_bad_threads_variable_as_a_process(tmp_path):
    # The reproduction: FASTPINN_THREADS=abc used to end in a traceback with exit status 1 (the divergence code).
    env = {**os.environ, "FASTPINN_THREADS": "abc"}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "fastpinn", *TRAIN, "--out", str(out)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == ENVIRONMENT, proc.stderr
    assert proc.stderr.strip() == "fastpinn train: error: FASTPINN_THREADS must be 'auto' or an integer >= 1, " \
                                  "got 'abc'"
    assert not out.exists()
