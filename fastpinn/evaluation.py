"""How a trained network is measured: its output on points and its relative L2 error on the reference grid.

:func:`predict_points` runs the network in chunks in the training dtype and device; :func:`reference_error`
compares an (ensemble of) prediction(s) with the reference solution; distributed, :func:`evaluate_on_rank0`
measures on rank 0 and broadcasts, so every rank decides alike.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from .collectives import collective
from .data_parallel import torch_distributed
from .history import rel_l2_error

__all__ = ["reference_tensors", "predict_points", "reference_error", "evaluate_on_rank0"]


def reference_tensors(problem: Any, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """The problem's reference grid ``X[M, d]`` (in ``dtype``) and solution ``U[M, out]`` (float64) on ``device``."""
    X, U = problem.reference()
    Xt = torch.as_tensor(np.asarray(X), dtype=dtype, device=device)
    Ut = torch.as_tensor(np.asarray(U), dtype=torch.float64, device=device)
    out = getattr(problem, "out_dim", None)
    name = getattr(problem, "name", "")
    if Xt.dim() != 2 or Ut.dim() not in (1, 2) or Ut.shape[0] != Xt.shape[0]:
        raise ValueError(f"problem {name!r}: solution() must return X[M, d] and U[M] or U[M, out], got shapes "
                         f"{list(Xt.shape)} and {list(Ut.shape)}")
    width = 1 if Ut.dim() == 1 else Ut.shape[1]
    if out is not None and width != out:
        # U[M] against an [M, 2] prediction broadcast to a [2M] vs [M] error deep in the evaluation
        raise ValueError(f"problem {name!r}: solution() returned U of shape {list(Ut.shape)}, expected "
                         f"[{Ut.shape[0]}, {out}] (one column per network output, out_dim={out})")
    return Xt, Ut.reshape(Ut.shape[0], -1)


@torch.no_grad()
def predict_points(net: nn.Module, X: Union[Tensor, np.ndarray], coords: Sequence[str], dtype: torch.dtype,
                   device: torch.device, chunk: int = 65536) -> Tensor:
    """``net`` on points ``X[M, d]`` (``d = len(coords)``; any float dtype, any device; computed in ``dtype``
    on ``device``, ``chunk`` points at a time): ``[M, out]`` (ensemble: ``[S, M, out]``)."""
    X = torch.as_tensor(X)
    d = len(coords)
    if X.dim() != 2 or X.shape[1] != d:
        raise ValueError(f"points must have shape [M, {d}] (columns {coords}), got {tuple(X.shape)}")
    if not X.is_floating_point():
        raise ValueError(f"points must be a floating-point array, got {X.dtype}")
    X = X.to(device=device, dtype=dtype)
    parts = [net(X[i:i + chunk]) for i in range(0, X.shape[0], chunk)]
    return torch.cat(parts, dim=-2)


def reference_error(pred: Tensor, U: Tensor) -> Tensor:
    """Relative L2 error ``[S]`` (float64) of a prediction ``[M, out]`` (ensemble ``[S, M, out]``) against
    the reference ``U[M, out]``."""
    pred = pred.to(torch.float64)
    if pred.dim() == 2:
        pred = pred.unsqueeze(0)
    # [S, M*out] vs [M*out]: flatten outputs so a vector solution counts every component.
    return rel_l2_error(pred.reshape(pred.shape[0], -1), U.reshape(-1))


def evaluate_on_rank0(evaluate: Callable[[], Tensor], rank: int, world_size: int, members: int,
                      device: torch.device) -> Tensor:
    """``evaluate()`` (``[S]`` float64) on rank 0, broadcast to the others (every rank then decides alike)."""
    if world_size == 1:
        return evaluate()
    err = evaluate() if rank == 0 else torch.empty(members, dtype=torch.float64, device=device)
    collective("the broadcast of rank 0's evaluation", torch_distributed().broadcast, err, src=0)
    return err
