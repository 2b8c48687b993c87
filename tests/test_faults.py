"""Faults reported clearly: filesystem faults (read-only, disk full, a file in the way), corrupt and
mismatched checkpoints, damaged run directories in ``reproduce``, divergence that leaves usable state,
bad points, bad op arguments, a foreign optimizer, CUDA that is not there.

Everything runs in-process on tiny problems (poisson1d with a handful of points, a few epochs)."""

from __future__ import annotations

import errno
import json
import math
import os
import warnings

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn import _io, cli, experiments, ops, runs
from fastpinn.ops import layout
from fastpinn.run import directory
from fastpinn.problem import Problem, dirichlet, pde
from fastpinn.problems import poisson1d
from fastpinn.trainer import (CheckpointError, CorruptCheckpointError, DeviceUnavailableError, History,
                              NonFiniteError, Trainer)

SMALL = ["train", "poisson1d", "--epochs", "10", "--n-pde", "16", "--eval-every", "5", "--no-figures",
         "--no-progress", "--backend", "torch", "--threads", "1", "--compile", "off"]


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("fastpinn train: poisson")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _no_temporaries(d) -> None:
    assert not [p for p in d.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------- filesystem
def test_output_path_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("precious")
    assert cli.main([*SMALL, "--out", str(f)]) == cli.EXIT_ENVIRONMENT
    line = _one_line(capsys.readouterr().err)
    assert str(f) in line and "not a directory" in line
    assert f.read_text() == "precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions; the simulated test covers it")
def test_read_only_directory_real(tmp_path, capsys):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        assert cli.main([*SMALL, "--out", str(d / "run")]) == cli.EXIT_ENVIRONMENT
        assert "Permission denied" in _one_line(capsys.readouterr().err)
    finally:
        d.chmod(0o755)


@pytest.mark.parametrize("code, cause", [(errno.EROFS, "Read-only file system"), (errno.EACCES, "Permission denied")])
def test_read_only_directory_simulated(tmp_path, capsys, monkeypatch, code, cause):
    """The filesystem refuses to create files (what a read-only mount does, also as root)."""
    def refuse(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(_io.tempfile, "mkstemp", refuse)
    out = tmp_path / "run"
    assert cli.main([*SMALL, "--out", str(out)]) == cli.EXIT_ENVIRONMENT
    line = _one_line(capsys.readouterr().err)
    assert cause in line and str(out) in line  # names the path and the cause; not a temporary's name
    assert not [p for p in out.iterdir()]  # nothing written, refused before training


def test_disk_full_leaves_nothing_half_written(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert cli.main([*SMALL, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_prepare = runs.prepare_run_dir

    def prepare_then_fill_the_disk(*a, **k):  # the disk fills up once the directory check has passed
        p = real_prepare(*a, **k)
        monkeypatch.setattr(_io.os, "fsync", full)
        return p

    monkeypatch.setattr(directory, "prepare_run_dir", prepare_then_fill_the_disk)
    assert cli.main([*SMALL, "--scheme", "pinn", "--force", "--out", str(out)]) == cli.EXIT_ENVIRONMENT
    monkeypatch.setattr(_io.os, "fsync", real_fsync)
    line = _one_line(capsys.readouterr().err)
    assert "No space left on device" in line and str(out) in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old run is intact
    _no_temporaries(out)


def test_stray_temporaries_are_removed(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*SMALL, "--out", str(out)]) == 0
    stray = out / ".checkpoint.pt.x1y2z3.tmp"  # what a kill -9 during a write leaves
    stray.write_bytes(b"half")
    assert cli.main([*SMALL, "--out", str(out), "--force"]) == 0
    assert not stray.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_trainer_on_cuda_without_cuda_says_so():
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
        Trainer(poisson1d(0, n_pde=8, depth=2, width=4), device="cuda")


# -------------------------------------------------------------------------------- checkpoints
def _trainer(**kw):
    problem_kw = dict(n_pde=12, depth=2, width=4)
    problem_kw.update(kw.pop("problem", {}))
    seeds = kw.pop("seeds", 0)
    return Trainer(poisson1d(seeds, **problem_kw), kw.pop("scheme", fastpinn.DN(beta=0.9)), backend="torch",
                   eval_every=2, **kw)


@pytest.mark.parametrize("other, field, theirs, ours", [
    (dict(scheme=fastpinn.DN(beta=0.99)), "scheme.beta", "0.9", "0.99"),
    (dict(scheme=fastpinn.DN(p=math.inf)), "scheme.p", "2.0", "inf"),
    (dict(scheme=fastpinn.MA()), "scheme.type", "'DN'", "'MA'"),
    (dict(problem=dict(width=5)), "network.width", "4", "5"),
    (dict(dtype=torch.float64), "dtype", "'float32'", "'float64'"),
    (dict(seeds=[0, 1]), "ensemble", "None", "2"),  # a one-network checkpoint into an ensemble trainer
    (dict(update_schedule="authors"), "update_schedule", "'fastpinn'", "'authors'"),
])
def test_mismatched_checkpoint_names_the_field_and_both_values(tmp_path, other, field, theirs, ours):
    a = _trainer()
    a.train(2)
    path = tmp_path / "ckpt.pt"
    a.save_checkpoint(str(path))
    b = _trainer(**other)
    before = b.net.theta.detach().clone()
    with pytest.raises(CheckpointError) as info:
        b.load_checkpoint(str(path))
    msg = str(info.value)
    assert field in msg and theirs in msg and ours in msg and str(path) in msg
    assert torch.equal(b.net.theta, before) and b.epoch == 0  # nothing was loaded


def test_checkpoint_format_version_and_epoch_are_checked(tmp_path):
    a = _trainer()
    a.train(4)
    state = a.state_dict()
    state["format_version"] = 0
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="format_version is 0 in the checkpoint but 2 here"):
        _trainer().load_checkpoint(str(tmp_path / "old.pt"))
    a.save_checkpoint(str(tmp_path / "ok.pt"))
    with pytest.raises(CheckpointError, match="epoch is 4 in the checkpoint but the run has only 3 epochs"):
        _trainer().load_checkpoint(str(tmp_path / "ok.pt"), max_epoch=3)
    with pytest.raises(CheckpointError, match="terms"):
        other_terms = _trainer()
        other_terms.problem.terms[1].name = "boundary"
        other_terms.load_checkpoint(str(tmp_path / "ok.pt"))


def test_truncated_checkpoint_is_reported_with_its_path(tmp_path):
    a = _trainer()
    a.train(2)
    path = tmp_path / "ckpt.pt"
    a.save_checkpoint(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match=f"checkpoint '{path}' is truncated or corrupt"):
        _trainer().load_checkpoint(str(path))
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CorruptCheckpointError, match="truncated or corrupt"):
        _trainer().load_checkpoint(str(path))


def test_cli_corrupt_checkpoint_is_an_environment_fault(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*SMALL, "--out", str(out)]) == 0
    (out / runs.METRICS).unlink()  # as if killed before the end ...
    (out / runs.CHECKPOINT).write_bytes(b"\x00" * 100)  # ... and the disk then damaged the checkpoint
    assert cli.main([*SMALL, "--out", str(out)]) == cli.EXIT_ENVIRONMENT
    line = _one_line(capsys.readouterr().err)
    assert "truncated or corrupt" in line and str(out / runs.CHECKPOINT) in line and "--force" in line


def test_other_configuration_in_the_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*SMALL, "--out", str(out)]) == 0
    assert cli.main([*SMALL, "--scheme", "pinn", "--out", str(out)]) == cli.EXIT_USAGE
    assert "different configuration" in _one_line(capsys.readouterr().err)
    (out / runs.CONFIG).write_text("{ not json")
    assert cli.main([*SMALL, "--scheme", "pinn", "--out", str(out)]) == cli.EXIT_USAGE
    assert "config.json is corrupt" in _one_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------------- reproduce
TINY = dict(seeds=1, epochs=4, problem="poisson1d", problem_kwargs={"n_pde": 12}, backend="torch", eval_every=2,
            figures=False)


@pytest.mark.parametrize("damage, reason", [
    (lambda d: (d / runs.CONFIG).write_text("{"), "config.json is corrupt"),
    (lambda d: (d / runs.METRICS).write_text("[1, 2"), "metrics.json is corrupt"),
    (lambda d: (d / runs.HISTORY).write_bytes(b"PK\x03\x04 broken"), "history.npz is corrupt"),
    (lambda d: (d / runs.CHECKPOINT).write_bytes(b"broken"), "checkpoint.pt is truncated or corrupt"),
    (lambda d: (d / runs.HISTORY).unlink(), "history.npz is missing"),
])
def test_reproduce_verifies_reused_runs_and_retrains_damaged_ones(tmp_path, damage, reason):
    out = tmp_path / "t1"
    first = experiments.reproduce("table1", out=out, **TINY)
    damage(out / "dn-b0.9")
    logs: list[str] = []
    again = experiments.reproduce("table1", out=out, log=logs.append, **TINY)
    line = next(line for line in logs if "DN-PINN (β=0.9)" in line and "]" in line)
    # A valid checkpoint (it holds the whole history) rebuilds the run; without one it is retrained.
    assert ("retraining" in line or "resuming" in line) and reason in line, logs
    assert [r.reused for r in again.rows] == [r.key != "dn-b0.9" for r in again.rows]
    assert [r.rel_l2_mean for r in again.rows] == [r.rel_l2_mean for r in first.rows]  # same numbers again
    assert runs.verify_run(out / "dn-b0.9", experiments.RunConfig(
        problem="poisson1d", scheme="dn", beta=0.9, seeds=(0,), ensemble=True, epochs=4,
        problem_kwargs={"n_pde": 12}).identity()) is None


# --------------------------------------------------------------------------------- divergence
def _nan_after(problem, calls: int):
    """Make the PDE residual NaN from the ``calls``-th evaluation on (one per epoch: full batch)."""
    good = problem.terms[0].residual
    n = [0]

    def residual(f):
        n[0] += f.x.shape[-2] > 3  # the construction-time trial evaluations (2-3 points) do not count
        r = good(f)
        return r * math.nan if n[0] > calls else r

    problem.terms[0].residual = residual
    return n


def test_divergence_restores_the_last_finite_state_in_memory():
    kw = dict(n_pde=12, depth=2, width=4)
    straight = Trainer(poisson1d(0, **kw), fastpinn.DN(tau=2), backend="torch", eval_every=5, dtype=torch.float64)
    straight.train(10)
    problem = poisson1d(0, **kw)
    _nan_after(problem, 13)  # epoch 13 (0-based) is the first NaN one
    t = Trainer(problem, fastpinn.DN(tau=2), backend="torch", eval_every=5, dtype=torch.float64)
    with pytest.raises(NonFiniteError) as info:
        t.train(20)
    e = info.value
    assert (e.term, e.member, e.epoch, e.last_good_epoch) == ("pde", 0, 13, 10)
    assert "'pde'" in str(e) and "epoch 13" in str(e)
    # The trainer is back at the boundary of epoch 10, exactly where an uninterrupted 10-epoch run is.
    assert t.epoch == 10 and torch.equal(t.net.theta, straight.net.theta)
    assert torch.equal(t.weighter.lam, straight.weighter.lam)
    assert e.history.epochs == 10 and e.history.extra["diverged"]
    # ... and usable: with the term repaired, training continues from there like the straight run.
    t.problem.terms[0].residual = poisson1d(0, **kw).to(dtype=torch.float64).terms[0].residual
    t._build_loss_fns()
    t.train(5)
    straight.train(5)
    assert torch.equal(t.net.theta, straight.net.theta)


def test_nonfinite_detection_syncs_only_at_eval_boundaries(monkeypatch):
    """The NaN/Inf flag lives on the device: host reads happen per boundary, not per epoch."""
    counts = {"n": 0}
    real_bool = torch.Tensor.__bool__

    def counting_bool(self):
        counts["n"] += 1
        return real_bool(self)

    def reads(epochs: int, eval_every: int) -> int:
        problem = poisson1d(0, n_pde=12, depth=2, width=4)
        problem.solution = None  # no evaluation: only the checks remain
        t = Trainer(problem, fastpinn.DN(tau=3), backend="torch", eval_every=eval_every)
        t.warmup()
        counts["n"] = 0
        monkeypatch.setattr(torch.Tensor, "__bool__", counting_bool)
        t.train(epochs)
        monkeypatch.setattr(torch.Tensor, "__bool__", real_bool)
        return counts["n"]

    assert reads(40, 20) == reads(20, 10) > 0  # same number of boundaries: same reads, twice the epochs


def test_cli_divergence_keeps_the_last_finite_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli.main([*SMALL, "--lr", "1e30", "--epochs", "40", "--out", str(out)])
    assert rc == cli.EXIT_DIVERGED
    line = _one_line(capsys.readouterr().err)
    assert "diverged" in line and "epoch" in line and str(out / runs.CHECKPOINT) in line
    m = json.loads((out / runs.METRICS).read_text())
    assert m["status"] == "diverged" and m["diverged_term"] in ("pde", "bc", None)
    assert m["checkpoint"] == str(out / runs.CHECKPOINT) and m["last_good_epoch"] % 5 == 0
    state = Trainer.read_checkpoint(str(out / runs.CHECKPOINT))
    assert state["epoch"] == m["last_good_epoch"] and bool(torch.isfinite(state["theta"]).all())
    assert History.load(str(out / runs.HISTORY)).epochs == m["last_good_epoch"]
    # Rerunning the same command does not train through it again: it reports the divergence.
    assert cli.main([*SMALL, "--lr", "1e30", "--epochs", "40", "--out", str(out)]) == cli.EXIT_DIVERGED


# ------------------------------------------------------------------------------------- points
def _box_problem(points, targets_value=0.0, **kw):
    return Problem(name="p", coords=("x",), lower=(0.0,), upper=(1.0,),
                   terms=[pde("pde", points, lambda f: f["u_xx"][..., 0], ("u_xx",)),
                          dirichlet("bc", torch.tensor([[0.0], [1.0]]), targets_value)], **kw)


def test_points_are_validated_at_construction():
    with pytest.raises(ValueError, match=r"term 'pde'.*1-D shape \(5,\).*reshape\(-1, 1\)"):
        pde("pde", torch.linspace(0, 1, 5), lambda f: f["u"], ("u",))
    with pytest.raises(ValueError, match="term 'pde': points must be finite"):
        pde("pde", torch.tensor([[0.1], [math.nan]]), lambda f: f["u"], ("u",))
    with pytest.raises(ValueError, match="term 'bc': points must be finite"):
        dirichlet("bc", torch.tensor([[math.inf]]), 0.0)
    with pytest.raises(ValueError, match="term 'bc': targets must be finite"):
        dirichlet("bc", torch.tensor([[0.0], [1.0]]), torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="lower=1.0 >= upper=1.0"):
        Problem(name="p", coords=("x",), lower=(1.0,), upper=(1.0,),
                terms=[dirichlet("bc", torch.tensor([[1.0]]), 0.0)])


def test_points_outside_the_box_warn_or_refuse():
    inside = torch.rand(8, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _box_problem(inside)  # boundary points at 0 and 1 are inside
    outside = torch.cat([inside, torch.tensor([[1.5]])])
    with pytest.warns(UserWarning, match=r"term 'pde': 1 point\(s\) lie outside the box.*\[1.5\]"):
        _box_problem(outside)
    with pytest.raises(ValueError, match="outside the box"):
        _box_problem(outside, points_outside="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _box_problem(outside, points_outside="ignore")
    with pytest.raises(ValueError, match="points_outside must be one of"):
        _box_problem(inside, points_outside="maybe")


# ---------------------------------------------------------------------------------------- ops
def _ema_args(K=2, beta=0.9, lam=None, lam_applied=None):
    """Arguments of the scheme-free EMA op: candidates hat[S, K], valid/target masks, state, beta, bias corr."""
    lam = torch.ones(1, K) if lam is None else lam
    lam_applied = torch.ones(1, K) if lam_applied is None else lam_applied
    target = torch.tensor([False] + [True] * (K - 1))[:K]
    return dict(hat=torch.ones(1, K), valid=torch.ones(1, K, dtype=torch.bool), target=target, lam=lam,
                lam_applied=lam_applied, n_updates=torch.zeros(1, dtype=torch.int64),
                skipped=torch.zeros(1, K, dtype=torch.int64), beta=beta, bias_correction=True)


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_ema_update_rejects_k0_beta_1_and_aliased_buffers(backend):
    with pytest.raises(ValueError, match="K >= 1"):
        ops.ema_update(**_ema_args(K=0), backend=backend)
    for beta in (1.0, -0.1, math.nan):
        with pytest.raises(ValueError, match=r"beta must be in \[0, 1\)"):
            ops.ema_update(**_ema_args(beta=beta), backend=backend)
    lam = torch.ones(1, 2)
    with pytest.raises(ValueError, match="distinct buffers"):
        ops.ema_update(**_ema_args(lam=lam, lam_applied=lam), backend=backend)
    ops.ema_update(**_ema_args(), backend=backend)  # and the valid call goes through


def test_raw_cpp_op_rejects_the_same_arguments():
    from fastpinn.ops import _ext

    _ext.load()
    op = torch.ops.fastpinn.ema_update

    def call(K=2, beta=0.9, alias=False, overlap=False):
        buf = torch.ones(1, 2 * K)
        lam = buf[:, :K]
        lam_applied = lam if alias else (buf[:, 1:K + 1] if overlap else torch.ones(1, K))
        a = _ema_args(K=K, beta=beta, lam=lam, lam_applied=lam_applied)
        op(a["hat"], a["valid"], a["target"], None, a["lam"], a["lam_applied"], a["n_updates"], a["skipped"],
           beta, True)

    with pytest.raises(RuntimeError, match="K >= 1"):
        call(K=0)
    with pytest.raises(RuntimeError, match=r"beta must be in \[0, 1\)"):
        call(beta=1.0)
    with pytest.raises(RuntimeError, match="distinct buffers"):
        call(alias=True)
    with pytest.raises(RuntimeError, match="distinct buffers"):
        call(overlap=True)  # partly shared memory
    call()


# ------------------------------------------------------------------------------------ trainer
def test_optimizer_must_hold_the_network_parameters():
    problem = poisson1d(0, n_pde=8, depth=2, width=4)
    stray = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="optimizer must hold the network's parameters"):
        Trainer(problem, optimizer=torch.optim.SGD([stray], lr=0.1), backend="torch")
    with pytest.raises(ValueError, match="optimizer must hold"):
        Trainer(problem, optimizer=lambda params: torch.optim.SGD([stray], lr=0.1), backend="torch")
    net = problem.network()
    Trainer(problem, network=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), backend="torch")
