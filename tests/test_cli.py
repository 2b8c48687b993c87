"""The ``fastpinn`` command line end to end, on tiny problems (poisson1d, a few epochs, one thread).

Most tests call ``fastpinn.cli.main([...])`` in-process; two run ``python -m fastpinn`` in a subprocess to
check the real exit status and that stderr holds one line and no traceback.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fastpinn import cli
from fastpinn.trainer import History
from fastpinn.checkpoint import read_checkpoint

TINY = ["--epochs", "12", "--n-pde", "16", "--threads", "1", "--no-progress", "--backend", "torch",
        "--eval-every", "4"]
METRIC_KEYS = {"rel_l2", "rel_l2_per_seed", "rel_l2_mean", "rel_l2_sem", "train_seconds", "warmup_seconds",
               "epochs", "scheme", "device", "ms_per_epoch"}


def _run(argv, capsys):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_train_writes_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    rc, stdout, _ = _run(["train", "poisson1d", "--scheme", "dn", "--beta", "0.99", "--p", "inf",
                          "--bias-correction", "--seed", "3", "--out", str(out), *TINY], capsys)
    assert rc == 0
    assert "rel. L2" in stdout and str(out) in stdout
    for name in ("config.json", "metrics.json", "history.npz", "checkpoint.pt", "solution.png", "gradients.png",
                 "training.png", "loss_trajectory.png", "weights.png"):
        assert (out / name).stat().st_size > 0, name
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["scheme"] == "dn" and metrics["device"] == "cpu" and metrics["epochs"] == 12
    assert metrics["rel_l2"] == pytest.approx(metrics["rel_l2_per_seed"][0])
    assert metrics["rel_l2_sem"] is None  # one seed: no standard error (strict JSON, no NaN)
    config = json.loads((out / "config.json").read_text())
    c = config["config"]
    assert (c["problem"], c["scheme"], c["beta"], c["p"], c["bias_correction"], c["seeds"]) == \
        ("poisson1d", "dn", 0.99, "inf", True, [3])
    assert c["backend"] == "torch" and c["problem_kwargs"] == {"n_pde": 16}
    env = config["environment"]
    assert env["torch_version"] == torch.__version__ and env["fastpinn_version"] and env["device_name"]
    h = History.load(str(out / "history.npz"))
    assert h.losses.shape == (12, 1, 2) and h.term_names == ["pde", "bc"]
    state = read_checkpoint(str(out / "checkpoint.pt"))
    assert state["epoch"] == 12


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    rc, _, err = _run(["train", "poisson1d", "--out", str(out), "--no-figures", *TINY], capsys)
    assert rc == 2 and "--force" in _one_line_error(err)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    rc, _, _ = _run(["train", "poisson1d", "--out", str(out), "--no-figures", "--force", *TINY], capsys)
    assert rc == 0 and (out / "metrics.json").exists() and (out / "keep.txt").exists()
    # a stale figure from an earlier run does not survive --force
    (out / "solution.png").write_bytes(b"old")
    rc, _, _ = _run(["train", "poisson1d", "--scheme", "pinn", "--out", str(out), "--no-figures", "--force", *TINY],
                    capsys)
    assert rc == 0 and not (out / "solution.png").exists()
    assert json.loads((out / "metrics.json").read_text())["scheme"] == "pinn"


def test_seeds_trains_one_ensemble(tmp_path, capsys):
    out = tmp_path / "ens"
    rc, stdout, _ = _run(["train", "poisson1d", "--scheme", "id", "--seeds", "3", "--out", str(out),
                          "--no-figures", *TINY], capsys)
    assert rc == 0 and "over 3 seeds" in stdout
    m = json.loads((out / "metrics.json").read_text())
    per_seed = np.array(m["rel_l2_per_seed"])
    assert per_seed.shape == (3,) and len(set(per_seed.tolist())) == 3  # different seeds, different errors
    assert m["rel_l2"] == pytest.approx(per_seed.mean()) and m["rel_l2_mean"] == m["rel_l2"]
    assert m["rel_l2_sem"] == pytest.approx(per_seed.std(ddof=1) / math.sqrt(3))
    assert History.load(str(out / "history.npz")).losses.shape == (12, 3, 2)
    assert json.loads((out / "config.json").read_text())["resolved"]["ensemble"] == 3


def test_default_output_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, _ = _run(["train", "poisson1d", "--scheme", "ma", "--ma-form", "wang", "--no-figures", *TINY], capsys)
    assert rc == 0
    (run,) = list((tmp_path / "runs").iterdir())
    assert run.name.startswith("poisson1d-ma-") and (run / "metrics.json").exists()


@pytest.mark.parametrize("argv, needle", [
    (["train", "poisson1d", "--scheme", "xyz"], "invalid choice"),
    (["train", "heat"], "problem must be one of burgers, poisson, allen_cahn"),
    (["train", "poisson1d", "--beta", "1.0"], "beta"),
    (["train", "poisson1d", "--beta", "-0.1"], "beta"),
    (["train", "poisson1d", "--p", "0.5"], "p must be"),
    (["train", "poisson1d", "--p", "two"], "--p"),
    (["train", "poisson1d", "--tau", "0"], "tau"),
    (["train", "poisson1d", "--epochs", "-5"], "epochs"),
    (["train", "poisson1d", "--epochs", "0"], "epochs"),
    (["train", "poisson1d", "--seed", "1", "--seeds", "2"], "not allowed"),
    (["train", "poisson1d", "--seeds", "0"], "seeds"),
    (["train", "poisson1d", "--n-pde", "0"], "n_pde"),
    (["train", "poisson1d", "--n-bc", "10"], "n_bc"),
    (["train", "poisson1d", "--lr", "-1"], "lr"),
    (["train", "poisson1d", "--eval-every", "0"], "eval_every"),
    (["train", "poisson1d", "--device", "tpu"], "device"),
    (["train", "poisson1d", "--threads", "-1"], "--threads"),
    (["train", "poisson1d", "--step-mode", "graph"], "invalid choice"),
    (["train", "poisson1d", "--derivative-method", "fastest"], "invalid choice"),
    (["train", "poisson1d", "--compile", "maybe"], "invalid choice"),
    (["train", "poisson1d", "--step-mode", "cuda_graph", "--device", "cpu"], "step_mode 'cuda_graph' needs a CUDA"),
    (["reproduce", "table9"], "invalid choice"),
    (["reproduce", "table4", "--seeds", "0"], "seeds"),
    ([], "required"),
])
def test_bad_arguments_exit_2_with_one_line(argv, needle, tmp_path, capsys):
    rc, _, err = _run(argv + ["--out", str(tmp_path / "o")] if argv else argv, capsys)
    assert rc == 2
    assert needle in _one_line_error(err)
    assert not (tmp_path / "o").exists()  # nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_requested_without_cuda(tmp_path, capsys):
    rc, _, err = _run(["train", "poisson1d", "--device", "cuda", "--out", str(tmp_path / "o")], capsys)
    assert rc == 3 and "CUDA is not available" in _one_line_error(err)  # an environment fault, not bad usage


def test_missing_compiled_backend_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from fastpinn.ops import _ext

    def broken():
        raise RuntimeError("The fastpinn C++ extension (fastpinn._C) could not be loaded.\nmore detail")

    monkeypatch.setattr(_ext, "load", broken)
    rc, _, err = _run(["train", "poisson1d", "--backend", "auto", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "--backend torch" in _one_line_error(err)
    # PINN needs no compiled op
    rc, _, _ = _run(["train", "poisson1d", "--scheme", "pinn", "--out", str(tmp_path / "p"), "--no-figures",
                     *[a for a in TINY if a not in ("--backend", "torch")]], capsys)
    assert rc == 0


def test_help_and_version(capsys):
    assert cli.main(["--version"]) == 0
    assert "fastpinn" in capsys.readouterr().out
    assert cli.main(["train", "--help"]) == 0
    assert "--bias-correction" in capsys.readouterr().out


def test_threads_restored_after_main(tmp_path, capsys):
    before = torch.get_num_threads()
    _run(["train", "poisson1d", "--out", str(tmp_path / "o"), "--no-figures", *TINY], capsys)
    assert torch.get_num_threads() == before


def _subprocess(args, cwd):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "fastpinn", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_module_entry_point_end_to_end(tmp_path):
    """``python -m fastpinn`` in a real process: exit status 2, one line on stderr, no traceback, nothing
    written. (The successful path is exercised in-process above; a second interpreter start is slow.)"""
    bad = _subprocess(["train", "poisson1d", "--beta", "2", "--out", "r"], tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert "beta" in _one_line_error(bad.stderr)
    assert not (Path(tmp_path) / "r").exists()


def test_device_step_mode_gives_the_eager_numbers(tmp_path, capsys):
    # The device-decided step combines K per-term backwards on every step; the eager (host-gate) step makes one
    # backward of the weighted sum between updates (issue 20): the same sums in another order, so equal to
    # rounding (float64: ~1e-15 relative, tests/test_trainer.py). The mode is recorded in config.json but is
    # not part of the run's identity.
    hist = {}
    for mode in ("eager", "device"):
        out = tmp_path / mode
        rc, _, _ = _run(["train", "poisson1d", "--scheme", "dn", "--tau", "3", "--dtype", "float64",
                         "--step-mode", mode, "--out", str(out), "--no-figures", *TINY], capsys)
        assert rc == 0
        assert json.loads((out / "config.json").read_text())["config"]["step_mode"] == mode
        hist[mode] = History.load(str(out / "history.npz"))
    np.testing.assert_allclose(hist["device"].losses, hist["eager"].losses, rtol=1e-12)
    np.testing.assert_allclose(hist["device"].weights, hist["eager"].weights, rtol=1e-12)


def test_tuned_derivative_methods_are_recorded(tmp_path, capsys):
    out = tmp_path / "tuned"
    rc, _, _ = _run(["train", "poisson1d", "--derivative-method", "tune", "--out", str(out), "--no-figures",
                     *TINY], capsys)
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["derivative_methods"]) == {"pde", "bc"}
    assert set(metrics["derivative_methods"].values()) <= {"jet", "fused", "func", "autograd", "taylor"}
    assert metrics["warmup_seconds"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["derivative_method"] == "tune"
    assert config["resolved"]["derivative_methods"] == metrics["derivative_methods"]


def test_auto_compile_decision_is_recorded(tmp_path, capsys):
    out = tmp_path / "auto"
    rc, _, _ = _run(["train", "poisson1d", "--compile", "auto", "--epochs", "30", "--out", str(out), "--no-figures",
                     *[a for a in TINY if a not in ("--epochs", "12")]], capsys)
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["compiled"] is False  # 10 epochs left after the probe: not worth a compilation
    assert metrics["compile_decision"]["probe_epochs"] == 20 and metrics["compile_decision"]["compiled"] is False
    assert json.loads((out / "config.json").read_text())["config"]["compile"] == "auto"
