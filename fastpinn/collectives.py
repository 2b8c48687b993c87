"""The few ``torch.distributed`` calls fastpinn makes outside the gradient reduction, with one error.

A collective blocks until every rank of the group has joined it. When a peer has died (or stalled past
the process group's timeout) the call fails with a backend error that does not say what was being done;
:func:`collective` turns that into a :class:`CollectiveError` naming this rank and the operation, so a
job of several processes fails with one readable line per rank instead of a traceback or a hang.
"""

from __future__ import annotations

from typing import Any, Callable

from .data_parallel import torch_distributed
from .errors import CollectiveError

__all__ = ["CollectiveError", "collective", "agree", "broadcast_object"]


def collective(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, a ``torch.distributed`` collective described by ``what`` (e.g. "the
    checkpoint barrier"); its failure is re-raised as :class:`CollectiveError`."""
    dist = torch_distributed()
    try:
        return fn(*args, **kwargs)
    except (RuntimeError, dist.DistError) as exc:
        if isinstance(exc, CollectiveError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CollectiveError(
            f"rank {dist.get_rank()} of {dist.get_world_size()}: {what} (a collective every rank must join) "
            f"failed: {first}. Another rank has probably died or stalled past the process group's timeout; "
            "the job stops here -- rerun it (it resumes from the last checkpoint)") from exc


def agree(flags: "list[bool]", what: str) -> "list[bool]":
    """Each flag OR-ed over the ranks (one all-reduce): a decision every rank then takes alike."""
    import torch

    dist = torch_distributed()
    t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    collective(what, dist.all_reduce, t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def broadcast_object(obj: Any, what: str, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (a picklable value) on every rank."""
    box = [obj]
    collective(what, torch_distributed().broadcast_object_list, box, src=src)
    return box[0]
