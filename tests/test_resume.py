"""Runs that survive: periodic checkpoints, kill -9 / SIGTERM / SIGINT of a real ``fastpinn train`` process,
resume equal to the uninterrupted run (parameters and history to the bit), ``--force`` that loses nothing,
and ``reproduce`` continuing a half-done configuration.

The subprocess runs train poisson1d with 200 points in float64 on the pure-PyTorch backend, one thread,
eager (``--compile off``): ~2.5 ms per epoch here, so a 1,200-epoch run takes ~3 s and a kill lands mid-run.
Bit-identity is the claim (same ops in the same order on the same state), so arrays are compared exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fastpinn import cli, experiments, runs
from fastpinn.run import one_run, records
from fastpinn.trainer import History, Trainer

EPOCHS = 1200
ARGS = ["train", "poisson1d", "--scheme", "dn", "--tau", "3", "--epochs", str(EPOCHS), "--n-pde", "200",
        "--eval-every", "10", "--checkpoint-every", "50", "--checkpoint-seconds", "0", "--no-figures",
        "--no-progress", "--backend", "torch", "--dtype", "float64", "--compile", "off", "--threads", "1"]


def _checkpoint_epoch(path: Path) -> int:
    try:
        return int(Trainer.read_checkpoint(str(path))["epoch"])
    except Exception:  # noqa: BLE001 - absent (or, never with atomic writes, partial): not there yet
        return -1


def _start(out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "fastpinn", *ARGS, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, path: Path, at_least: int, timeout: float = 120.0) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        e = _checkpoint_epoch(path)
        if e >= at_least:
            return e
        if proc.poll() is not None:
            pytest.fail(f"the run ended before its checkpoint reached epoch {at_least}: {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no checkpoint appeared")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[History, torch.Tensor]:
    out = tmp_path_factory.mktemp("straight") / "run"
    assert cli.main([*ARGS, "--out", str(out)]) == 0
    state = Trainer.read_checkpoint(str(out / runs.CHECKPOINT))
    return History.load(str(out / runs.HISTORY)), state["theta"]


def _assert_same_run(out: Path, uninterrupted) -> None:
    ref_hist, ref_theta = uninterrupted
    h = History.load(str(out / runs.HISTORY))
    assert h.epochs == EPOCHS  # no epoch lost or duplicated
    np.testing.assert_array_equal(h.losses, ref_hist.losses)
    np.testing.assert_array_equal(h.weights, ref_hist.weights)
    np.testing.assert_array_equal(h.eval_epochs, ref_hist.eval_epochs)
    np.testing.assert_array_equal(h.rel_l2, ref_hist.rel_l2)
    np.testing.assert_array_equal(h.skipped, ref_hist.skipped)
    theta = Trainer.read_checkpoint(str(out / runs.CHECKPOINT))["theta"]
    assert torch.equal(theta, ref_theta)
    m = json.loads((out / runs.METRICS).read_text())
    assert m["status"] == "ok" and m["epochs"] == EPOCHS and m["resumed_from_epoch"] is not None
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_kill_9_then_rerun_resumes_bit_identically(tmp_path, uninterrupted, capsys):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoint(proc, out / runs.CHECKPOINT, 100)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (out / runs.METRICS).exists(), "the run finished before the kill: the test proves nothing"
    killed_at = _checkpoint_epoch(out / runs.CHECKPOINT)
    assert 0 < killed_at < EPOCHS and History.load(str(out / runs.HISTORY)).epochs == killed_at
    # Rerunning the same command continues (no --resume needed, no "directory not empty").
    assert cli.main([*ARGS, "--out", str(out)]) == 0
    assert f"resuming from the checkpoint at epoch {killed_at}" in capsys.readouterr().err
    _assert_same_run(out, uninterrupted)
    # A third run of the same command reuses the finished run.
    assert cli.main([*ARGS, "--out", str(out)]) == 0
    assert "reusing" in capsys.readouterr().err


def test_sigterm_writes_a_checkpoint_and_exits_143(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoint(proc, out / runs.CHECKPOINT, 50)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == cli.EXIT_SIGTERM, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("fastpinn train: poisson")]
    assert len(lines) == 1 and "SIGTERM" in lines[0] and "checkpoint" in lines[0] and "Traceback" not in err
    stopped_at = _checkpoint_epoch(out / runs.CHECKPOINT)
    assert stopped_at >= 50 and not (out / runs.METRICS).exists()
    assert History.load(str(out / runs.HISTORY)).epochs == stopped_at
    assert cli.main([*ARGS, "--out", str(out), "--resume"]) == 0
    _assert_same_run(out, uninterrupted)


def test_sigint_in_process_stops_at_an_epoch_boundary(tmp_path, uninterrupted, monkeypatch, capsys):
    """Ctrl-C: the handler only asks the trainer to stop; the epoch finishes, a checkpoint is written, 130."""
    out = tmp_path / "run"
    real_train = Trainer.train

    def train_and_interrupt(self, epochs=None, **kw):
        cb = kw.get("callback")

        def callback(tr, epoch, info):
            if cb is not None:
                cb(tr, epoch, info)
            if epoch == 330:
                os.kill(os.getpid(), signal.SIGINT)  # arrives mid-run, between two epochs' Python code
        kw["callback"] = callback
        return real_train(self, epochs, **kw)

    monkeypatch.setattr(Trainer, "train", train_and_interrupt)
    assert cli.main([*ARGS, "--out", str(out)]) == cli.EXIT_SIGINT
    assert "SIGINT" in capsys.readouterr().err
    assert _checkpoint_epoch(out / runs.CHECKPOINT) == 331  # the epoch after the signal completed
    monkeypatch.setattr(Trainer, "train", real_train)
    assert cli.main([*ARGS, "--out", str(out)]) == 0
    _assert_same_run(out, uninterrupted)


def test_force_keeps_the_old_run_until_the_new_one_has_a_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    small = ["train", "poisson1d", "--epochs", "20", "--n-pde", "16", "--eval-every", "5", "--no-figures",
             "--no-progress", "--backend", "torch", "--threads", "1", "--compile", "off"]
    assert cli.main([*small, "--out", str(out)]) == 0
    old = {n: (out / n).read_bytes() for n in runs.RUN_FILES}

    def crash(self, *a, **k):
        raise KeyboardInterrupt  # dies in the warm-up, before any checkpoint of the new run

    monkeypatch.setattr(Trainer, "warmup", crash)
    assert cli.main([*small, "--scheme", "pinn", "--force", "--out", str(out)]) == cli.EXIT_SIGINT
    assert {n: (out / n).read_bytes() for n in runs.RUN_FILES} == old  # nothing of the old run was lost
    monkeypatch.undo()
    capsys.readouterr()
    assert cli.main([*small, "--scheme", "pinn", "--force", "--out", str(out)]) == 0
    assert json.loads((out / runs.METRICS).read_text())["scheme"] == "pinn"
    assert json.loads((out / runs.CONFIG).read_text())["config"]["scheme"] == "pinn"


def test_resume_without_a_checkpoint_is_a_usage_error(tmp_path, capsys):
    rc = cli.main([*ARGS[:2], "--resume", "--out", str(tmp_path / "nothing"), "--no-progress"])
    assert rc == cli.EXIT_USAGE and "cannot resume" in capsys.readouterr().err


def test_reproduce_resumes_a_half_done_configuration(tmp_path, monkeypatch):
    tiny = dict(seeds=2, epochs=30, problem="poisson1d", problem_kwargs={"n_pde": 16}, backend="torch",
                eval_every=5, figures=False, run_options={"checkpoint_every": 5, "checkpoint_seconds": None})
    straight = experiments.reproduce("table1", out=tmp_path / "straight", **tiny)
    out = tmp_path / "half"
    real_train = Trainer.train
    calls = []
    interrupt = [True]

    def stop_midway(self, epochs=None, **kw):
        calls.append(epochs)
        if len(calls) == 2 and interrupt[0]:  # the second configuration: stop after epoch 11 as SIGTERM would
            cb = kw["callback"]

            def callback(tr, epoch, info):
                cb(tr, epoch, info)
                if epoch == 10:
                    tr.request_stop()
            kw["callback"] = callback
        return real_train(self, epochs, **kw)

    monkeypatch.setattr(Trainer, "train", stop_midway)
    with pytest.raises(experiments.Interrupted):
        experiments.reproduce("table1", out=out, **tiny)
    assert _checkpoint_epoch(out / "ma-b0.9" / runs.CHECKPOINT) == 11
    calls.clear()
    interrupt[0] = False
    logs: list[str] = []
    res = experiments.reproduce("table1", out=out, log=logs.append, **tiny)
    assert any("resuming" in line and "epoch 11" in line for line in logs), logs
    assert calls[:2] == [30 - 11, 30]  # the half-done one continues, the next starts from scratch
    assert [r.rel_l2_mean for r in res.rows] == [r.rel_l2_mean for r in straight.rows]
    a = History.load(str(out / "ma-b0.9" / runs.HISTORY))
    b = History.load(str(tmp_path / "straight" / "ma-b0.9" / runs.HISTORY))
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.rel_l2, b.rel_l2)


# ------------------------------------------------------------------ stops and kills at chosen moments
# In process and deterministic: the signal is sent (or the "kill" raised) from inside the trainer at a
# chosen point, so each moment that a loaded machine makes likely is hit every time. 100 epochs of
# poisson1d with 32 points: ~0.3 s per run.
SMALL_EPOCHS = 100


def _small_cfg() -> experiments.RunConfig:
    return experiments.RunConfig(problem="poisson1d", scheme="dn", tau=3, epochs=SMALL_EPOCHS, backend="torch",
                                 dtype="float64", eval_every=10, problem_kwargs={"n_pde": 32})


def _small_run(out: Path, **kw):
    return experiments.train_run(_small_cfg(), out, figures=False, checkpoint_every=50,
                                 checkpoint_seconds=kw.pop("checkpoint_seconds", None), **kw)


@pytest.fixture(scope="module")
def small_straight(tmp_path_factory) -> tuple[History, torch.Tensor]:
    out = tmp_path_factory.mktemp("small") / "run"
    _small_run(out)
    return History.load(str(out / runs.HISTORY)), Trainer.read_checkpoint(str(out / runs.CHECKPOINT))["theta"]


def _assert_same_small_run(out: Path, straight) -> None:
    ref_hist, ref_theta = straight
    h = History.load(str(out / runs.HISTORY))
    assert h.epochs == SMALL_EPOCHS
    np.testing.assert_array_equal(h.eval_epochs, ref_hist.eval_epochs)  # none dropped or duplicated
    for name in ("losses", "weights", "rel_l2", "skipped"):
        np.testing.assert_array_equal(getattr(h, name), getattr(ref_hist, name), err_msg=name)
    assert torch.equal(Trainer.read_checkpoint(str(out / runs.CHECKPOINT))["theta"], ref_theta)


# (where the SIGTERM arrives, epoch the trainer is at then, epoch the checkpoint must hold)
MOMENTS = [
    ("step", 59, 60),       # during the step of epoch 60: the stop lands exactly on an eval boundary
    ("step", 60, 61),       # during the step of epoch 61: off a boundary
    ("evaluate", 60, 61),   # during the evaluation at epoch 60, after the trainer read the stop flag
    ("callback", 50, 51),   # during the periodic checkpoint at epoch 50
]


@pytest.mark.parametrize("where,at,expect", MOMENTS)
def test_sigterm_at_any_moment_resumes_bit_identically(tmp_path, small_straight, monkeypatch, where, at, expect):
    out = tmp_path / "run"
    sent = []

    def send_once(trainer):
        if trainer.epoch == at and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # the real handler of train_run receives it

    if where == "step":
        real = Trainer._run_step
        monkeypatch.setattr(Trainer, "_run_step", lambda self, idx: (send_once(self), real(self, idx))[1])
    elif where == "evaluate":
        real = Trainer.evaluate
        monkeypatch.setattr(Trainer, "evaluate", lambda self: (send_once(self), real(self))[1])
    else:
        real = Trainer.save_checkpoint
        monkeypatch.setattr(Trainer, "save_checkpoint",
                            lambda self, path, extra=None: (real(self, path, extra), send_once(self))[1])
    with pytest.raises(experiments.Interrupted) as info:
        _small_run(out)
    assert sent and info.value.epoch == expect == _checkpoint_epoch(out / runs.CHECKPOINT)
    assert History.load(str(out / runs.HISTORY)).epochs == expect
    monkeypatch.undo()
    m = _small_run(out)
    assert m["resumed_from_epoch"] == expect
    _assert_same_small_run(out, small_straight)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not an Exception, so no handler of ours catches it)."""


@pytest.mark.parametrize("kill_on_write", [0, 1])
def test_kill_inside_a_checkpoint_write_never_leaves_the_history_behind(tmp_path, small_straight, monkeypatch,
                                                                       kill_on_write):
    """A kill -9 during the second commit (epoch 100, the end), at either of its two file writes: a
    checkpoint that is visible always has its history.npz beside it, and the rerun is the same run."""
    from fastpinn import _io

    out = tmp_path / "run"
    real = _io.atomic_open
    writes = []

    def dying_open(path):
        if Path(path).name in (runs.HISTORY, runs.CHECKPOINT):
            if len(writes) == 2 + kill_on_write:  # the first commit (epoch 50) wrote two files
                raise _Killed
            writes.append(path)
        return real(path)

    monkeypatch.setattr(_io, "atomic_open", dying_open)
    with pytest.raises(_Killed):
        _small_run(out)
    monkeypatch.undo()
    ckpt = _checkpoint_epoch(out / runs.CHECKPOINT)
    assert ckpt in (50, 100) and not (out / runs.METRICS).exists()
    assert History.load(str(out / runs.HISTORY)).epochs >= ckpt  # never a checkpoint without its history
    _small_run(out)
    _assert_same_small_run(out, small_straight)


def test_checkpoints_at_every_boundary_do_not_change_the_run(tmp_path, small_straight, monkeypatch):
    """The time-based trigger fires at whatever boundaries a loaded machine reaches: committing changes
    nothing of the training. Here it fires at every boundary (a clock that jumps 1000 s per reading)."""
    clock = iter(range(0, 10**9, 1000))
    monkeypatch.setattr(one_run, "time", SimpleNamespace(monotonic=lambda: float(next(clock)),
                                                             perf_counter=time.perf_counter))
    commits = []
    real = Trainer.save_checkpoint
    monkeypatch.setattr(Trainer, "save_checkpoint", lambda self, path, extra=None: (commits.append(self.epoch),
                                                                                     real(self, path, extra))[1])
    _small_run(tmp_path / "run", checkpoint_seconds=1.0)
    assert commits == list(range(10, SMALL_EPOCHS, 10)) + [SMALL_EPOCHS]
    _assert_same_small_run(tmp_path / "run", small_straight)


# ------------------------------------------------------------------ early stopping (patience) across a resume
# lr 10 on a tiny network: the error stops improving at epoch 8, so patience 6 (evaluations every 2 epochs)
# ends the run at epoch 14 of 300 (asserted below, not assumed).
def _patience_cfg() -> experiments.RunConfig:
    return experiments.RunConfig(problem="poisson1d", scheme="pinn", epochs=300, lr=10.0, backend="torch",
                                 dtype="float64", eval_every=2, patience=6,
                                 problem_kwargs={"n_pde": 12, "depth": 2, "width": 4})


def _patience_run(out: Path):
    return experiments.train_run(_patience_cfg(), out, figures=False, checkpoint_every=4, checkpoint_seconds=None)


@pytest.fixture(scope="module")
def patience_straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("patience") / "run"
    m = _patience_run(out)
    assert m["early_stopped"] and m["epochs"] == 14
    h = History.load(str(out / runs.HISTORY))
    assert h.epochs == 14
    return h, Trainer.read_checkpoint(str(out / runs.CHECKPOINT))["theta"]


def _assert_same_patience_run(out: Path, straight) -> None:
    ref_hist, ref_theta = straight
    h = History.load(str(out / runs.HISTORY))
    assert h.epochs == ref_hist.epochs
    np.testing.assert_array_equal(h.eval_epochs, ref_hist.eval_epochs)
    np.testing.assert_array_equal(h.losses, ref_hist.losses)
    np.testing.assert_array_equal(h.rel_l2, ref_hist.rel_l2)
    assert torch.equal(Trainer.read_checkpoint(str(out / runs.CHECKPOINT))["theta"], ref_theta)
    assert json.loads((out / runs.METRICS).read_text())["early_stopped"]


@pytest.mark.parametrize("at", [8, 10, 13])  # stops at 9 (off), 11 (off), 14 (the boundary that runs out)
def test_a_resumed_run_stops_early_where_the_uninterrupted_one_does(tmp_path, patience_straight, monkeypatch, at):
    """Patience counts from the last improvement before the resume (epoch 8), not from the resume epoch;
    a stop request landing on the boundary where patience runs out ends the run as an early stop."""
    out = tmp_path / "run"
    real = Trainer._run_step
    sent = []

    def step(self, idx):
        if self.epoch == at and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, idx)

    monkeypatch.setattr(Trainer, "_run_step", step)
    if at + 1 == 14:
        m = _patience_run(out)  # out of patience at the stop: finished, not interrupted
        assert m["early_stopped"] and m["resumed_from_epoch"] is None
    else:
        with pytest.raises(experiments.Interrupted):
            _patience_run(out)
        monkeypatch.undo()
        assert _patience_run(out)["resumed_from_epoch"] == at + 1
    assert sent
    _assert_same_patience_run(out, patience_straight)


def test_a_kill_after_the_early_stop_checkpoint_reruns_nothing(tmp_path, patience_straight, monkeypatch):
    """Killed after the final checkpoint of an early-stopped run, before metrics.json: the rerun finishes
    that run (it does not train on past the early stop)."""
    out = tmp_path / "run"
    real = runs.write_json

    def dying_write(path, obj):
        if Path(path).name == runs.METRICS:
            raise _Killed
        return real(path, obj)

    monkeypatch.setattr(records, "write_json", dying_write)
    with pytest.raises(_Killed):
        _patience_run(out)
    monkeypatch.undo()
    assert _checkpoint_epoch(out / runs.CHECKPOINT) == 14
    calls = []
    real_train = Trainer.train
    monkeypatch.setattr(Trainer, "train", lambda self, *a, **k: (calls.append(a), real_train(self, *a, **k))[1])
    assert _patience_run(out)["resumed_from_epoch"] == 14 and calls == []
    _assert_same_patience_run(out, patience_straight)
