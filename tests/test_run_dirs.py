"""Run directories can be trusted: one writer at a time (a lock a dead process does not leave held), a run
that died before its first checkpoint is started again by the same command, ``--force`` removes only
what fastpinn wrote. Each test is the reproduction of a defect of 5838b7e (issue 16, item 5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastpinn import cli
from fastpinn.run import directory
from fastpinn.run.lock import LOCK_FILE, RunDirBusyError

ARGS = ["train", "poisson1d", "--n-pde", "16", "--eval-every", "5", "--no-figures", "--no-progress",
        "--backend", "torch", "--compile", "off", "--checkpoint-seconds", "0"]


def _one_line(err: str) -> str:
    header = ("fastpinn train: ", " -> ")  # the run's announcement, not an error
    lines = [line for line in err.splitlines()
             if line.strip() and not (line.startswith(header[0]) and header[1] in line and "error" not in line)]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "fastpinn", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, path: Path, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {path.name} appeared: {proc.stderr.read()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail(f"{path.name} did not appear")
        time.sleep(0.01)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def test_second_train_on_a_busy_directory_is_refused_naming_the_holder(tmp_path, capsys):
    """5838b7e: two trains on one --out both ran and mixed their files; now the second exits 5, one line."""
    out = tmp_path / "run"
    first = _start([*ARGS, "--threads", "1", "--epochs", "100000000", "--out", str(out)])
    try:
        _wait_for(first, out / directory.CONFIG)
        config = (out / directory.CONFIG).read_bytes()
        for epochs in ("100000000", "7"):  # the same configuration, and another one
            assert cli.main([*ARGS, "--threads", "1", "--epochs", epochs, "--out", str(out)]) == cli.EXIT_BUSY
            line = _one_line(capsys.readouterr().err)
            assert f"pid {first.pid}" in line and str(out) in line and "in use" in line
        assert (out / directory.CONFIG).read_bytes() == config and first.poll() is None  # the first untouched
        assert not (out / directory.METRICS).exists()
    finally:
        _kill(first)


@pytest.mark.parametrize("extra", [[], ["--resume"]])
def test_run_killed_before_its_first_checkpoint_is_restarted_by_the_same_command(tmp_path, capsys, extra):
    """5838b7e: "holds a run of a different configuration" (and --resume: "checkpoint.pt is missing")."""
    out = tmp_path / "run"
    args = [*ARGS, "--threads", "1", "--epochs", "600", "--out", str(out)]
    proc = _start(args)
    _wait_for(proc, out / directory.CONFIG)
    _kill(proc)  # SIGKILL: the lock file stays, its flock is gone with the process
    assert not (out / directory.CHECKPOINT).exists()
    lock_left = (out / LOCK_FILE).exists()
    assert cli.main([*args, *extra]) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert lock_left and f"taking over the lock left by pid {proc.pid}" in err
    assert "before its first checkpoint" in err
    assert json.loads((out / directory.METRICS).read_text())["epochs"] == 600
    assert not (out / LOCK_FILE).exists()  # released at the end


def test_failed_start_bad_threads_then_the_same_command_runs(tmp_path, capsys, monkeypatch):
    """A start that failed (here: a bad $FASTPINN_THREADS) does not block the same command afterwards."""
    out = tmp_path / "run"
    args = [*ARGS, "--epochs", "10", "--out", str(out)]  # no --threads: the environment decides
    monkeypatch.setenv("FASTPINN_THREADS", "abc")
    try:
        assert cli.main(args) != cli.EXIT_OK
    except RuntimeError:  # how 5838b7e reported it (a traceback); not what this test is about
        pass
    monkeypatch.delenv("FASTPINN_THREADS")
    capsys.readouterr()
    assert cli.main(args) == cli.EXIT_OK, capsys.readouterr().err
    assert json.loads((out / directory.METRICS).read_text())["epochs"] == 10


def test_failed_start_huge_epochs_then_a_corrected_command_runs(tmp_path, capsys):
    out = tmp_path / "run"
    try:
        assert cli.main([*ARGS, "--threads", "1", "--epochs", str(2**63 - 1), "--out", str(out)]) != cli.EXIT_OK
    except RuntimeError:  # storage overflow while allocating the history (5838b7e: a traceback)
        pass
    capsys.readouterr()
    assert cli.main([*ARGS, "--threads", "1", "--epochs", "10", "--out", str(out)]) == cli.EXIT_OK, \
        capsys.readouterr().err


def test_stale_lock_file_is_taken_over_with_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": 999999999, "host": "elsewhere", "started": "then"}))
    assert cli.main([*ARGS, "--threads", "1", "--epochs", "10", "--out", str(out)]) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert sum("taking over the lock left by pid 999999999 on elsewhere" in line for line in err.splitlines()) == 1
    assert not (out / LOCK_FILE).exists()


def test_a_live_lock_holder_refuses_predictable_python_callers(tmp_path):
    """plan_run_dir / train_run from Python: RunDirBusyError naming the holder's pid."""
    from fastpinn.run import RunConfig, plan_run_dir, train_run

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fastpinn.run.lock import RunDirLock; "
                               "RunDirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        cfg = RunConfig(problem="poisson1d", epochs=3, backend="torch", problem_kwargs={"n_pde": 16})
        for call in (lambda: plan_run_dir(cfg, out), lambda: train_run(cfg, out, figures=False)):
            with pytest.raises(RunDirBusyError, match=f"pid {holder.pid}"):
                call()
    finally:
        _kill(holder)
    assert plan_run_dir(cfg, out) == "fresh"  # its holder is dead: the lock is free


def test_force_removes_only_what_fastpinn_wrote(tmp_path, capsys):
    """5838b7e: --force deleted every *.png and hidden *.tmp of the directory, the user's included."""
    out = tmp_path / "run"
    args = [*ARGS, "--threads", "1", "--out", str(out)]
    assert cli.main([*args, "--epochs", "10"]) == cli.EXIT_OK
    user = {"my-plot.png": b"user figure", ".draft.tmp": b"user temp", "notes.tmp": b"notes", "data.csv": b"1,2"}
    for name, data in user.items():
        (out / name).write_bytes(data)
    (out / "training.png").write_bytes(b"a figure of the old run")  # fastpinn's: replaced by the new run
    (out / ".metrics.json.x1y2.tmp").write_bytes(b"{")  # an atomic write of fastpinn killed mid-way
    assert cli.main([*args, "--epochs", "7", "--force"]) == cli.EXIT_OK
    assert {n: (out / n).read_bytes() for n in user} == user
    assert not (out / "training.png").exists() and not (out / ".metrics.json.x1y2.tmp").exists()
    assert json.loads((out / directory.METRICS).read_text())["epochs"] == 7


def test_run_figures_are_the_listed_ones(tmp_path):
    """--force removes figures by name (directory.RUN_FIGURES): the list must cover what a run writes."""
    out = tmp_path / "run"
    args = [a for a in ARGS if a != "--no-figures"]
    assert cli.main([*args, "--threads", "1", "--epochs", "10", "--out", str(out)]) == cli.EXIT_OK
    written = {p.name for p in out.glob("*.png")}
    assert written and written <= set(directory.RUN_FIGURES)
    assert set(json.loads((out / directory.METRICS).read_text())["figures"]) == written


FAILING_PROBLEM = '''
import math, torch
from fastpinn import Problem, pde, dirichlet, sampling

def make_problem(seed=0, n_pde=16, epochs=500):
    x = sampling.uniform(n_pde, [0.0], [1.0], torch.Generator().manual_seed(seed))
    calls = []
    def residual(f):
        calls.append(1)
        if len(calls) > 5:  # fails while training, after the setup's calls
            raise ValueError("the residual's own check failed")
        return f["u_xx"][..., 0] + math.pi ** 2 * torch.sin(math.pi * f.x[..., 0])
    return Problem(name="failing", coords=("x",), lower=(0.0,), upper=(1.0,),
                   terms=[pde("pde", x, residual, "u_xx"),
                          dirichlet("bc", torch.tensor([[0.0], [1.0]], dtype=torch.float64), 0.0)],
                   depth=2, width=8, epochs=epochs, seeds=(seed,))
'''


def test_a_run_failing_while_training_is_one_line_and_exit_6(tmp_path, capsys):
    """5838b7e: a ValueError raised while training came out as a RuntimeError traceback (exit 1, the
    divergence code)."""
    problem = tmp_path / "failing.py"
    problem.write_text(FAILING_PROBLEM)
    args = ["train", f"{problem}:make_problem", "--epochs", "50", "--out", str(tmp_path / "run"), "--threads", "1",
            *ARGS[4:]]
    assert cli.main(args) == cli.EXIT_RUN_FAILED
    line = _one_line(capsys.readouterr().err)
    assert "training failed" in line and "the residual's own check failed" in line


def test_processes_racing_for_one_directory_never_hold_it_together(tmp_path):
    """Four processes take the lock of one directory at once, then give it back and take it again: at any
    moment at most one holds it (each records how many holders it saw while holding)."""
    out = tmp_path / "run"
    script = ("import sys, time, os\n"
              "from fastpinn.run.lock import RunDirLock, RunDirBusyError\n"
              "d, log, start = sys.argv[1], sys.argv[2], float(sys.argv[3])\n"
              "time.sleep(max(0.0, start - time.time()))\n"
              "held = 0\n"
              "for _ in range(30):\n"
              "    try:\n"
              "        lock = RunDirLock(d).acquire()\n"
              "    except RunDirBusyError:\n"
              "        continue\n"
              "    with open(log, 'a') as fh:\n"
              "        fh.write(f'+{os.getpid()}\\n')\n"
              "    time.sleep(0.01)\n"
              "    with open(log, 'a') as fh:\n"
              "        fh.write(f'-{os.getpid()}\\n')\n"
              "    lock.release()\n"
              "    held += 1\n"
              "print(held)\n")
    log = tmp_path / "log"
    start = time.time() + 2.0  # after every interpreter has started
    procs = [subprocess.Popen([sys.executable, "-c", script, str(out), str(log), str(start)], stdout=subprocess.PIPE,
                              text=True) for _ in range(4)]
    held = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert sum(held) >= 30  # the lock went round (released locks are taken again)
    inside = 0
    for line in log.read_text().split():
        inside += 1 if line[0] == "+" else -1
        assert inside in (0, 1), "two processes held the lock at once"
    assert not (out / LOCK_FILE).exists()
