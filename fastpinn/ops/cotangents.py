"""Batched cotangents: the backward of the fused MLP jet op for several loss terms that read one evaluation, in
one call of ``fastpinn::mlp_jet_backward_batched``.

A per-term backward (one autograd pass per term, :meth:`fastpinn.WeightedBackward` on an update step) reaches a
shared evaluation once per term, and each time the op's backward recomputes every tile's forward state and sweeps
back through the network for that term's cotangent. Inside :func:`batched_cotangents` the op's autograd node
(``_LeafJet`` in :mod:`fastpinn.ops.mlp_jet`) instead hands its cotangent to the active :class:`CotangentBatch`
and returns no parameter gradient; after the passes, :meth:`CotangentBatch.flush` runs one batched backward per
evaluation for all the terms that reached it (the tile state and the activation derivatives formed once, one
sweep per term) and returns each term's gradient per parameter tensor, which the caller adds to that term's row.
Each term's gradient equals the one its own pass would have produced bit for bit (the batched kernel's streams
use the single call's arithmetic); summed into a row holding other contributions (the term also read another
evaluation) only the order of the additions differs.

Only the CPU path of the op defers (its leaf node, ``_LeafJet``); the CUDA (Triton) path and the registered autograd
formula keep one backward per pass, as do nodes whose input gradient (``x``) is needed or that run under
``create_graph``. The active batch is process-wide (one per-term backward at a time); gradient hooks on the
parameters do not see the deferred part (it is added to the rows after the passes).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from torch import Tensor

__all__ = ["CotangentBatch", "batched_cotangents", "active_batch", "has_batched_kernel"]

_active: Optional["CotangentBatch"] = None


def active_batch() -> Optional["CotangentBatch"]:
    """The batch collecting cotangents now (inside :func:`batched_cotangents`), else ``None``."""
    return _active


def has_batched_kernel() -> bool:
    """Whether the loaded extension has ``fastpinn::mlp_jet_backward_batched`` (a library built before it
    existed lacks it; the batch then runs the single backward once per term)."""
    return hasattr(torch.ops.fastpinn, "mlp_jet_backward_batched")


class _Pending:
    """One evaluation's deferred backward: how to split its ``grad_theta[.., S, P]`` over its parameter tensors,
    and the (term, cotangent) pairs that reached it."""

    __slots__ = ("single", "batched", "leaves", "split", "cotangents")

    def __init__(self, single: Callable[[Tensor], Tensor], batched: Callable[[Tensor], Tensor],
                 leaves: Sequence[Tensor], split: Callable[[Tensor], list[Tensor]]) -> None:
        self.single, self.batched, self.leaves, self.split = single, batched, leaves, split
        self.cotangents: list[tuple[int, Tensor]] = []


class CotangentBatch:
    """The cotangents of the current per-term backward passes, per fused evaluation.

    Attributes:
        term: the index of the term whose backward pass runs now (set by the caller before each pass).
        batched_calls: batched kernel calls made by :meth:`flush` so far (evaluations reached by several terms).
        single_calls: single backward calls made by :meth:`flush` (evaluations reached by one term).
    """

    def __init__(self) -> None:
        self.term = 0
        self._pending: dict[int, _Pending] = {}
        self._keep: list[Any] = []  # the autograd contexts, kept alive so their ids stay unique until the flush
        self.batched_calls = 0
        self.single_calls = 0

    def defer(self, ctx: Any, cotangent: Tensor, single: Callable[[Tensor], Tensor],
              batched: Callable[[Tensor], Tensor], leaves: Sequence[Tensor],
              split: Callable[[Tensor], list[Tensor]]) -> None:
        """Record ``cotangent`` (``[S, C, N, out]``) of the evaluation ``ctx`` for the current term.
        ``single(g)`` / ``batched(g_stack)`` give ``grad_theta[S, P]`` / ``[K, S, P]``; ``split(grad_theta[S, P])``
        gives the gradients of ``leaves`` (their shapes)."""
        entry = self._pending.get(id(ctx))
        if entry is None:
            entry = self._pending[id(ctx)] = _Pending(single, batched, leaves, split)
            self._keep.append(ctx)
        entry.cotangents.append((self.term, cotangent))

    def flush(self) -> Iterator[tuple[int, Tensor, Tensor]]:
        """Run the deferred backwards; yields ``(term, leaf, gradient)`` with the gradient shaped like ``leaf``,
        evaluation by evaluation, terms in pass order. Empties the batch."""
        pending, self._pending, self._keep = self._pending, {}, []
        batched_ok = has_batched_kernel()
        for entry in pending.values():
            terms = [k for k, _ in entry.cotangents]
            if len(terms) == 1 or not batched_ok:
                grads = [entry.single(g) for _, g in entry.cotangents]
                self.single_calls += len(grads)
            else:
                grads = list(entry.batched(torch.stack([g for _, g in entry.cotangents])).unbind(0))
                self.batched_calls += 1
            for k, grad in zip(terms, grads):
                for leaf, g in zip(entry.leaves, entry.split(grad)):
                    yield k, leaf, g


@contextlib.contextmanager
def batched_cotangents() -> Iterator[CotangentBatch]:
    """Collect the fused op's cotangents of the backward passes run inside; the caller sets ``batch.term``
    before each pass and consumes :meth:`CotangentBatch.flush` after the last (inside the block). Not
    re-entrant: a nested block raises."""
    global _active
    if _active is not None:
        raise RuntimeError("batched_cotangents() blocks do not nest")
    batch = CotangentBatch()
    _active = batch
    try:
        yield batch
    finally:
        _active = None
