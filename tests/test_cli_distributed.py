"""``fastpinn train`` under torchrun: one model, its points split over 2 gloo ranks (float64, one thread each).

A rank killed mid-run fails the job (torchrun names it); rerunning the same command resumes from the last
periodic checkpoint and ends where one process training straight through ends.

Tolerances: the ranks sum partial means where one process sums all points at once, so every step differs
by float64 rounding, carried forward by Adam (tests/test_distributed.py argues this). What that leaves is
measured on the parameters: 4e-12 relative after 200-400 epochs, so ``theta`` and the errors get
``rtol=1e-9``. The history's boundary loss falls to ~1e-7 (a square of a residual that cancels O(1)
network terms) and its weight is a ratio with the boundary gradient's norm in the denominator, so their
relative errors are the parameters' divided by that small residual: measured 7e-6 (loss) and 2e-7
(weight); they get ``rtol=1e-4`` -- a wrong shard share or an unreduced gradient shows at 1e-2 and more.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from fastpinn.cli import main
from fastpinn.checkpoint import read_checkpoint

pytestmark = [
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no torch.distributed/gloo"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the rank's process through /proc"),
]

EPOCHS = 200
ARGS = ["poisson1d", "--epochs", str(EPOCHS), "--n-pde", "41", "--eval-every", "10", "--checkpoint-every", "10",
        "--backend", "torch", "--dtype", "float64", "--device", "cpu", "--no-progress", "--no-figures"]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", FASTPINN_THREADS="1")


def _torchrun(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "fastpinn", "train", *ARGS, "--out", str(out), "--collective-timeout", "60"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of the worker of ``rank`` among the launcher's children (read from their environment)."""
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in env:
                return int(pid)
    return None


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.05)


def test_killed_rank_fails_the_job_and_the_rerun_resumes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTPINN_THREADS", "1")
    straight = tmp_path / "straight"
    assert main(["train", *ARGS, "--out", str(straight)]) == 0

    run = tmp_path / "dp"
    job = _torchrun(run)
    _wait_for(run / "checkpoint.pt", job)  # the first periodic checkpoint (epoch 10)
    victim = _rank_pid(job.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    output, _ = job.communicate(timeout=120)
    assert job.returncode != 0, output
    assert "SIGKILL" in output and "rank      : 1" in output, output  # torchrun names the rank that died
    assert not (run / "metrics.json").exists()  # not a finished run

    job = _torchrun(run)  # the same command again
    output, _ = job.communicate(timeout=300)
    assert job.returncode == 0, output
    assert "resuming from the checkpoint at epoch" in output and "x 2 ranks (data parallel)" in output, output
    assert output.count("rel. L2 =") == 1, output  # rank 0 reports for the job
    m = json.loads((run / "metrics.json").read_text())
    assert m["ranks"] == 2 and m["epochs"] == EPOCHS and m["resumed_from_epoch"] >= 10
    a, b = np.load(straight / "history.npz"), np.load(run / "history.npz")
    assert b["losses"].shape == a["losses"].shape == (EPOCHS, 1, 2)
    np.testing.assert_allclose(b["losses"], a["losses"], rtol=1e-4)
    np.testing.assert_allclose(b["weights"], a["weights"], rtol=1e-4)
    np.testing.assert_allclose(b["rel_l2"], a["rel_l2"], rtol=1e-9)
    theta = [read_checkpoint(str(d / "checkpoint.pt"))["theta"] for d in (straight, run)]
    torch.testing.assert_close(theta[1], theta[0], rtol=1e-9, atol=1e-9 * float(theta[0].abs().max()))
    one = json.loads((straight / "metrics.json").read_text())
    np.testing.assert_allclose(m["rel_l2_per_seed"], one["rel_l2_per_seed"], rtol=1e-9)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json", "history.npz", "metrics.json"]


def test_collective_timeout_is_checked(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["train", *ARGS, "--out", "unused", "--collective-timeout", "0"]) == 2
    err = capsys.readouterr().err
    assert "[rank 1/2]" in err and "--collective-timeout must be a number of seconds > 0" in err


@pytest.mark.parametrize("command", [["compare", "poisson1d"], ["demo"], ["evaluate", "somewhere"]])
def test_commands_that_run_in_one_process_are_refused_under_torchrun(monkeypatch, capsys, command, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.chdir(tmp_path)
    assert main(command) == 2
    assert "runs in one process; under torchrun use 'fastpinn train'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written
