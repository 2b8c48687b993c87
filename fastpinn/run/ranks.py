"""Ranks of a run: the layout torchrun puts in the environment, and how rank 0 of a data-parallel run
decides for every rank (rank 0 reads and writes the run directory).

The one place the run layer detects ranks; ``fastpinn.data_parallel`` (the Trainer's layout) is the other
side of the same facts.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["torchrun_layout", "RunRanks"]


def torchrun_layout() -> tuple[int, int]:
    """``(rank, world size)`` torchrun put in the environment (``RANK`` and ``WORLD_SIZE``, both set);
    ``(0, 1)`` outside it. ``ValueError`` (one line) when they are not integers."""
    import os

    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if not rank or not world:
        return 0, 1
    try:
        return int(rank), int(world)
    except ValueError:
        raise ValueError(f"RANK and WORLD_SIZE must be integers (set by torchrun), got RANK={rank!r}, "
                         f"WORLD_SIZE={world!r}") from None


class RunRanks:
    """The ranks of a data-parallel :func:`train_run` (one process: rank 0 of 1, and every method is
    local): rank 0 reads and writes the run directory, decisions it makes reach every rank."""

    def __init__(self) -> None:
        import torch.distributed as dist

        on = dist.is_available() and dist.is_initialized()
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if on else (0, 1)
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
