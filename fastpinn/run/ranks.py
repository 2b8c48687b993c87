"""How rank 0 of a data-parallel run decides for every rank (rank 0 reads and writes the run directory).

Ranks themselves are detected in one place, :mod:`fastpinn.data_parallel` (``rank_and_world`` for the
process group, ``launcher_rank_and_world`` for what torchrun put in the environment).
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["RunRanks"]


class RunRanks:
    """The ranks of a data-parallel :func:`train_run` (one process: rank 0 of 1, and every method is
    local): rank 0 reads and writes the run directory, decisions it makes reach every rank."""

    def __init__(self) -> None:
        from ..data_parallel import rank_and_world

        self.rank, self.world_size = rank_and_world()
        self.lead = self.rank == 0

    def decide(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on rank 0, its result (or the exception it raised) on every rank."""
        if self.world_size == 1:
            return fn()
        from ..collectives import broadcast_object

        outcome: tuple = (None, None)
        if self.lead:
            try:
                outcome = (fn(), None)
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                outcome = (None, exc)
        value, error = broadcast_object(outcome, "sharing rank 0's view of the run directory")
        if error is not None:
            raise error
        return value

    def agree(self, flag: bool, what: str) -> bool:
        """``flag`` OR-ed over the ranks (e.g. a checkpoint due by one rank's clock)."""
        if self.world_size == 1:
            return bool(flag)
        from ..collectives import agree

        return agree([flag], what)[0]

    def barrier(self, what: str) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            from ..collectives import collective

            collective(what, dist.barrier)
