"""The Trainer's parts, importable and usable on their own."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import fastpinn
from fastpinn.data_parallel import BatchLayout, launcher_rank_and_world, rank_and_world
from fastpinn.problems import allen_cahn, burgers_inverse


def test_rank_and_world_alone_and_under_a_launcher(monkeypatch):
    assert rank_and_world() == (0, 1)  # no process group
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launcher_rank_and_world() == (0, 1)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launcher_rank_and_world() == (2, 4)
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ValueError, match="^RANK and WORLD_SIZE must be integers"):
        launcher_rank_and_world()


def test_batch_layout_shards_every_global_batch():
    # Two ranks of a 10-point term in batches of 4: every global batch's points land on exactly one rank,
    # with shares that sum to one.
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    ranks = [BatchLayout([(10, 4, 3)], [(0, 5)], 2, torch.float64, torch.device("cpu")),
             BatchLayout([(10, 4, 3)], [(5, 10)], 2, torch.float64, torch.device("cpu"))]
    steps = ranks[0].epoch_batches(gen())
    assert len(steps) == 3  # the global layout is drawn alike on every rank
    assert all(torch.equal(a[0], b[0]) for a, b in zip(steps, ranks[1].epoch_batches(gen())))
    for (idx,) in steps:
        local = [r.local([idx]) for r in ranks]
        assert float(sum(sh for _, sh in local).sum()) == pytest.approx(1.0)
        got = sorted([int(i) for i in local[0][0][0] if local[0][1][0] > 0] +
                     [int(i) + 5 for i in local[1][0][0] if local[1][1][0] > 0])
        assert got == sorted(int(i) for i in idx)


def test_history_and_checkpoints_import_without_the_trainer():
    code = ("import sys, fastpinn.history, fastpinn.checkpoint, fastpinn.errors, fastpinn.callbacks; "
            "print('fastpinn.trainer' in sys.modules)")
    # fastpinn/__init__ exports Trainer, so only the modules themselves can be checked: none imports it.
    for mod in ("history", "checkpoint", "errors", "callbacks", "data_parallel", "cuda_graph", "compile_policy"):
        src = open(f"{fastpinn.__path__[0]}/{mod}.py").read()
        assert "from .trainer import" not in src.replace("if TYPE_CHECKING:\n    from .trainer import", ""), mod
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_graph_capture_snapshot_restores_the_coefficients(monkeypatch):
    # The CUDA-graph capture's warm-up steps also move an inverse problem's coefficients: the snapshot the
    # capture takes (Trainer.state_tensors) must hold them, so capturing leaves no trace (CPU stand-in).
    from fastpinn.cuda_graph import CapturedStep, StateSnapshot

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    make = lambda: fastpinn.Trainer(burgers_inverse(0, n_pde=30, n_data=10, depth=2, width=5),  # noqa: E731
                                    fastpinn.DN(tau=2), dtype=torch.float64, backend="torch", step_mode="device")
    reference, disturbed = make(), make()
    saved = StateSnapshot(disturbed.state_tensors(), disturbed.optimizer)
    for _ in range(CapturedStep.WARMUP_STEPS + 1):
        disturbed.step()
    assert not torch.equal(disturbed.coefficients, reference.coefficients)
    saved.restore()
    reference.train(3)
    disturbed.train(3)
    assert torch.equal(disturbed.coefficients, reference.coefficients)
    assert torch.equal(disturbed.theta, reference.theta)
