"""Trained runs read back: a run directory's problem and trainer at its last checkpoint, and its error."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..problem import Problem
from . import directory, records
from .config import RunConfig
from .one_run import build_trainer

__all__ = ["load_run", "evaluate_run", "trainer_from_run"]


def trainer_from_run(run_dir: Path, cfg: RunConfig) -> Any:
    """The trainer of a finished run, at its final state (for figures that need the network)."""
    _, trainer = build_trainer(cfg)
    trainer.load_checkpoint(str(run_dir / directory.CHECKPOINT))
    return trainer


def load_run(run_dir: Union[str, Path], *, device: Optional[str] = None) -> tuple["RunConfig", Problem, Any]:
    """Rebuild a run directory's problem and trainer and load its checkpoint (the last one written).

    ``device``: where to load it (default: the run's own device when available, else the CPU).

    Raises:
        ValueError: the directory holds no run (``config.json``), or its configuration is invalid here.
        fastpinn.trainer.CheckpointError: the checkpoint is missing, corrupt or does not match.
    """
    out = Path(run_dir)
    config = directory.read_config(out)
    if not config or "config" not in config:
        raise ValueError(f"{str(out)!r} holds no fastpinn run (no readable {directory.CONFIG})")
    cfg = RunConfig.from_dict(config["config"])
    if device is not None:
        cfg.device = device
    elif torch.device(cfg.device).type == "cuda" and not torch.cuda.is_available():
        cfg.device = "cpu"
    problem, trainer = build_trainer(cfg)
    ckpt = out / directory.CHECKPOINT
    if not ckpt.is_file():
        raise ValueError(f"{str(out)!r} has no {directory.CHECKPOINT} to predict from")
    trainer.load_checkpoint(str(ckpt))
    return cfg, problem, trainer


def evaluate_run(run_dir: Union[str, Path], points: Optional[np.ndarray] = None, values: Optional[np.ndarray] = None,
                 *, device: Optional[str] = None) -> dict:
    """Relative L2 error per seed of a run directory's trained network: on the problem's reference grid, or
    against ``values[M]`` / ``[M, out]`` at ``points[M, d]``."""
    _, problem, trainer = load_run(run_dir, device=device)
    if points is None:
        if problem.solution is None:
            raise ValueError(f"problem {problem.name!r} has no reference solution: pass --points and --values")
        err = trainer.evaluate().cpu().numpy()
        where = "reference grid"
    else:
        if values is None:
            raise ValueError("--points needs --values (the exact or measured solution at those points)")
        pred = trainer.predict(torch.as_tensor(points)).to(torch.float64)
        pred = pred.reshape(1 if pred.dim() == 2 else pred.shape[0], -1)
        exact = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
        if exact.numel() != pred.shape[1]:
            raise ValueError(f"values must hold one entry per point and output ({pred.shape[1]}), got {exact.numel()}")
        from ..trainer import rel_l2_error

        err = rel_l2_error(pred, exact).cpu().numpy()
        where = f"{len(points)} given points"
    per_seed = [float(v) for v in np.asarray(err).reshape(-1)]
    mean, sem = records.mean_sem(per_seed)
    return {"rel_l2_per_seed": per_seed, "rel_l2_mean": mean, "rel_l2_sem": sem if math.isfinite(sem) else None,
            "on": where,
            "epoch": int(trainer.epoch)}
