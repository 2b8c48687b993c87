"""Data parallelism over the points: who this process is, and which points it keeps.

The one place that reads ranks: :func:`rank_and_world` for an initialized ``torch.distributed`` process
group, :func:`launcher_rank_and_world` for what ``torchrun`` put in the environment (before a group exists).

A Trainer with ``distributed`` on keeps, on each rank, only its contiguous shard of every term's points
(rank ``r`` of ``W``: point indices ``[r N // W, (r + 1) N // W)``, so shard sizes may differ by one;
:func:`shard_problem`). Mini-batches are laid out globally exactly as in one process (the same shuffling
generator on every rank draws the global permutation) and each rank trains on the part of every global
batch that lies in its shard (:class:`BatchLayout`); the weighted backward reduces gradients and losses
with the shares ``n_rk / N_k``, so ``W`` ranks train what one process trains on the same points, to
rounding. The NaN check is a collective decision; evaluation runs on rank 0 (broadcast); checkpoints are
written on rank 0 only and do not depend on ``W``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from .problem import Problem

__all__ = ["torch_distributed", "rank_and_world", "launcher_rank_and_world", "data_parallel_layout",
           "world_group", "shard_problem", "BatchLayout"]


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
    """``(rank, world size)`` that ``torchrun`` put in the environment (``RANK`` and ``WORLD_SIZE``, both
    set); ``(0, 1)`` outside it. ``ValueError`` (one line) when they are not integers."""
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if not rank or not world:
        return 0, 1
    try:
        return int(rank), int(world)
    except ValueError:
        raise ValueError(f"RANK and WORLD_SIZE must be integers (set by torchrun), got RANK={rank!r}, "
                         f"WORLD_SIZE={world!r}") from None


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


class BatchLayout:
    """Which points every step of an epoch trains on, globally and on this rank.

    ``layout``: per term ``(points N, batch size, batches per epoch)`` of the whole problem, identical on
    every rank; ``shard_ranges``: per term the ``[lo, hi)`` of the global points this rank holds.
    Mini-batches are laid out globally exactly as in one process (the same shuffling generator on every
    rank draws the global permutation); each rank trains on the part of every global batch in its shard.
    """

    def __init__(self, layout: Sequence[tuple[int, Optional[int], int]], shard_ranges: Sequence[tuple[int, int]],
                 world_size: int, dtype: torch.dtype, device: torch.device) -> None:
        self.layout = list(layout)
        self.shard_ranges = list(shard_ranges)
        self.world_size = world_size
        self.dtype, self.device = dtype, device
        #: Steps per epoch: the most batches any term has (a term with fewer cycles through its own).
        self.steps_per_epoch = max(nb for _, _, nb in self.layout)

    def epoch_batches(self, generator: Optional[torch.Generator]) -> list[list[Optional[Tensor]]]:
        """Per step of an epoch, the global point indices of each term (``None``: all points), shuffled by
        ``generator`` (``None``: a fixed generator, leaving the training one untouched, e.g. for a warm-up)."""
        gen = generator if generator is not None else torch.Generator(device=self.device).manual_seed(0)
        perms = [None if nb == 1 else torch.randperm(n, generator=gen, device=self.device) for n, _, nb in self.layout]
        steps = []
        for b in range(self.steps_per_epoch):
            idx: list[Optional[Tensor]] = []
            for (_, bs, nb), perm in zip(self.layout, perms):
                if perm is None:
                    idx.append(None)
                else:
                    j = b % nb
                    idx.append(perm[j * bs:(j + 1) * bs])
            steps.append(idx)
        return steps

    def local(self, indices: Sequence[Optional[Tensor]]) -> tuple[list[Optional[Tensor]], Optional[Tensor]]:
        """A global step's indices -> this rank's indices into its shard and its shares ``n_rk / N_k`` ``[K]``
        of the step's points (``None`` alone: the indices as they are). A rank without any point of a batch
        computes one placeholder point with share 0 (its gradient counts zero, the collective still runs)."""
        if self.world_size == 1:
            return list(indices), None
        local: list[Optional[Tensor]] = []
        shares = []
        for (n, _, _), (lo, hi), idx in zip(self.layout, self.shard_ranges, indices):
            if idx is None:
                local.append(None)
                shares.append((hi - lo) / n)
                continue
            mine = idx[(idx >= lo) & (idx < hi)] - lo
            shares.append(mine.numel() / idx.numel())
            local.append(mine if mine.numel() else idx.new_zeros(1))
        return local, torch.tensor(shares, dtype=self.dtype, device=self.device)
