"""Data parallelism over the points: who this process is, and which points it keeps.

The one place that reads ranks: :func:`rank_and_world` for an initialized ``torch.distributed`` process
group, :func:`launcher_rank_and_world` for what ``torchrun`` put in the environment (before a group exists).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

from .problem import Problem

__all__ = ["torch_distributed", "rank_and_world", "launcher_rank_and_world", "data_parallel_layout",
           "world_group", "shard_problem"]


def torch_distributed() -> Any:
    """The ``torch.distributed`` module (imported on first use: most runs never need it)."""
    import torch.distributed as dist

    return dist


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialized default process group; ``(0, 1)`` without one."""
    dist = torch_distributed()
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launcher_rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` that ``torchrun`` put in the environment (``RANK``/``WORLD_SIZE``);
    ``(0, 1)`` outside it. ``ValueError`` (one line) when they are not integers."""
    try:
        return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        raise ValueError(f"RANK and WORLD_SIZE must be integers (set by torchrun), got RANK="
                         f"{os.environ.get('RANK')!r}, WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}") from None


def world_group() -> Any:
    """The default process group (the one a data-parallel trainer reduces over)."""
    return torch_distributed().group.WORLD


def data_parallel_layout(distributed: Optional[bool]) -> tuple[int, int]:
    """``(rank, world_size)`` of data-parallel training for ``Trainer(distributed=...)``."""
    if distributed not in (None, True, False):
        raise ValueError(f"distributed must be None (auto), True or False, got {distributed!r}")
    dist = torch_distributed()
    initialized = dist.is_available() and dist.is_initialized()
    if distributed is True and not initialized:
        raise ValueError("distributed=True needs an initialized torch.distributed process group (launch with "
                         "torchrun and call torch.distributed.init_process_group first)")
    if distributed is False or not initialized:
        return 0, 1
    return rank_and_world()


def shard_problem(problem: Problem, rank: int, world: int) -> tuple[Problem, list[tuple[int, int]]]:
    """This rank's contiguous shard ``[r N // W, (r + 1) N // W)`` of every term's points (and targets)."""
    terms, ranges = [], []
    for t in problem.terms:
        n = t.n_points
        if n < world:
            raise ValueError(f"term {t.name!r} has {n} points, fewer than the {world} ranks: every rank needs a shard")
        lo, hi = rank * n // world, (rank + 1) * n // world
        pts = tuple(p.narrow(-2, lo, hi - lo).clone() for p in t.points)
        tg = None if t.targets is None else t.targets.narrow(-2, lo, hi - lo).clone()
        terms.append(dataclasses.replace(t, points=pts, targets=tg, batch_size=None))
        ranges.append((lo, hi))
    return dataclasses.replace(problem, terms=terms), ranges
