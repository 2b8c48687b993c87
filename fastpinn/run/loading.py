"""Trained runs read back: a run directory's problem and trainer at its last checkpoint, and its error."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from ..problem import Problem
from . import directory, records
from .config import USER_PROBLEM_FORM, RunConfig, file_sha256, is_user_problem, user_problem_file
from .one_run import build_trainer

__all__ = ["load_run", "evaluate_run", "trainer_from_run", "problem_to_load"]


def trainer_from_run(run_dir: Path, cfg: RunConfig) -> Any:
    """The trainer of a finished run, at its final state (for figures that need the network)."""
    _, trainer = build_trainer(cfg)
    trainer.load_checkpoint(str(run_dir / directory.CHECKPOINT))
    return trainer


def problem_to_load(run_dir: Path, config: dict, named: Optional[str] = None) -> str:
    """The problem to rebuild a run of (its ``config.json``: ``config``) with, without running code the run
    directory names: a built-in problem as recorded; a problem file only when the caller names it
    (``named``, ``FILE.py:FUNCTION``; the command line's ``--problem``) and its SHA-256 is the one the run
    recorded. ``ValueError`` (one line) otherwise -- before anything is imported."""
    recorded = str(config["config"].get("problem", ""))
    if not is_user_problem(recorded):
        if named is not None and named != recorded:
            raise ValueError(f"{str(run_dir)!r} holds a run of the built-in problem {recorded!r}; --problem names "
                             f"a problem file ({USER_PROBLEM_FORM}) only for a run of one")
        return recorded
    if named is None:
        raise ValueError(f"{str(run_dir)!r} holds a run of the problem file {recorded!r}; fastpinn does not import "
                         f"code a run directory names: pass --problem {USER_PROBLEM_FORM} (the file you trust) to "
                         "load it")
    if not is_user_problem(named):
        raise ValueError(f"--problem must be {USER_PROBLEM_FORM}, got {named!r}")
    path = user_problem_file(named)
    if not path.is_file():
        raise ValueError(f"problem file {str(path)!r} does not exist (--problem {named!r})")
    want = (config.get("identity") or {}).get("problem_file_sha256")
    got = file_sha256(path)
    if got != want:
        raise ValueError(f"problem file {str(path)!r} has SHA-256 {got}, but the run in {str(run_dir)!r} was "
                         f"trained with a file of SHA-256 {want}: name the file it was trained with")
    return named


def load_run(run_dir: Union[str, Path], *, device: Optional[str] = None,
             problem: Optional[str] = None) -> tuple["RunConfig", Problem, Any]:
    """Rebuild a run directory's problem and trainer and load its checkpoint (the last one written).

    ``device``: where to load it (default: the run's own device when available, else the CPU).
    ``problem``: for a run of a problem file, that file (``FILE.py:FUNCTION``), named by the caller and
    checked against the run's recorded SHA-256 (:func:`problem_to_load`); nothing the run directory names
    is imported.

    Raises:
        ValueError: the directory holds no run (``config.json``), its configuration is invalid here, or its
            problem file is not named (or not the one it was trained with).
        fastpinn.trainer.CheckpointError: the checkpoint is missing, corrupt or does not match.
    """
    out = Path(run_dir)
    config = directory.read_config(out)
    if not config or not isinstance(config.get("config"), dict):
        raise ValueError(f"{str(out)!r} holds no fastpinn run (no readable {directory.CONFIG})")
    chosen = problem_to_load(out, config, problem)  # before RunConfig: nothing of the directory runs
    cfg = dataclasses.replace(RunConfig.from_dict(config["config"]), problem=chosen)
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
                 *, device: Optional[str] = None, problem: Optional[str] = None,
                 output: Optional[Sequence[int]] = None) -> dict:
    """Relative L2 error per seed of a run directory's trained network: on the problem's reference grid, or
    against ``values[M]`` / ``[M, out]`` at ``points[M, d]``. ``problem``: as for :func:`load_run`. ``output``:
    only these outputs (indices), e.g. ``[0]`` for ``u`` of a network ``(u, k)``; ``values`` then hold those
    columns only ``[M]`` / ``[M, len(output)]``, while the reference grid's solution is cut to them."""
    _, problem, trainer = load_run(run_dir, device=device, problem=problem)
    if output is not None:
        output = [int(i) for i in output]
        if not output or any(i < 0 or i >= problem.out_dim for i in output) or len(set(output)) != len(output):
            raise ValueError(f"--output must name distinct outputs of the network (0..{problem.out_dim - 1}), "
                             f"got {output}")
    if points is None:
        if problem.solution is None:
            raise ValueError(f"problem {problem.name!r} has no reference solution: pass --points and --values")
        if output is None:
            err = trainer.evaluate().cpu().numpy()
        else:
            X, U = problem.reference()
            points, values = np.asarray(X), np.asarray(U).reshape(len(X), -1)[:, output]
        where = "reference grid"
    else:
        where = f"{len(points)} given points"
        if values is None:
            raise ValueError("--points needs --values (the exact or measured solution at those points)")
    if points is not None:
        pred = trainer.predict(torch.as_tensor(points)).to(torch.float64)
        if output is not None:
            pred = pred[..., output]
        pred = pred.reshape(1 if pred.dim() == 2 else pred.shape[0], -1)
        exact = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
        if exact.numel() != pred.shape[1]:
            raise ValueError(f"values must hold one entry per point and output ({pred.shape[1]}), got {exact.numel()}")
        from ..trainer import rel_l2_error

        err = rel_l2_error(pred, exact).cpu().numpy()
    per_seed = [float(v) for v in np.asarray(err).reshape(-1)]
    mean, sem = records.mean_sem(per_seed)
    return {"rel_l2_per_seed": per_seed, "rel_l2_mean": mean, "rel_l2_sem": sem if math.isfinite(sem) else None,
            "on": where if output is None else f"{where}, outputs {output}",
            "epoch": int(trainer.epoch)}
