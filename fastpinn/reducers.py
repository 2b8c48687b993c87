"""How a :class:`~fastpinn.WeightedBackward` makes its gradients and losses global: the gradient reducers.

Data-parallel training (see the README section "Scale out with torch.distributed"): each rank passes its
terms' *local* losses (means over its own points) and ``shard_weights[k] = n_rk / N_k`` (its share of term
``k``'s points in this step). The backward scales its rows by those shares and the reducer sums the buffers
over the ranks, which gives the gradient of the *global* mean on every rank. The gradients travel in flat
"packed" buffers with an ``[S, K]`` loss slot behind them (``G[S, K, P]`` or the combined ``[S, P]``
gradient, then the losses), so one collective carries both.

Two reducers:

* :class:`LocalReducer` (the default): one process; no shares, nothing reduced.
* :class:`AllReduceReducer`: ``torch.distributed.all_reduce`` over a process group, either blocking after the
  backward passes (``overlap=False``) or started piece by piece beside them (``overlap=True``): on an update
  step a row of ``G`` once its term's backward is done, on the other steps buckets of the combined gradient
  (layer groups, started from post-accumulate-grad hooks as its one backward finishes them, DDP-style).

Either kind is a :class:`GradientReducer`; the backward calls the methods below and owns nothing of the
collectives.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Iterator, Optional, Protocol, Sequence, Union, runtime_checkable

import torch
from torch import Tensor

from .collectives import CollectiveError
from .validation import check_flag, check_int

__all__ = ["GradientReducer", "LocalReducer", "AllReduceReducer", "make_reducer", "check_overlap_members", "pack_losses",
           "loss_slot"]

DEFAULT_BUCKET_ELEMENTS = 1 << 16


def loss_slot(buffer: Tensor, losses: Tensor) -> Tensor:
    """The ``[S, K]`` view of the loss slot at the end of a packed ``buffer`` (``losses`` gives its shape)."""
    return buffer[buffer.numel() - losses.numel():].view_as(losses)


def pack_losses(buffer: Tensor, losses: Tensor, with_losses: bool) -> Tensor:
    """Fill the loss slot behind a packed gradient buffer with ``losses`` (or zeros); returns the slot."""
    slot = loss_slot(buffer, losses)
    if with_losses:
        slot.copy_(losses)
    else:
        slot.zero_()
    return slot


@runtime_checkable
class GradientReducer(Protocol):
    """What a :class:`~fastpinn.WeightedBackward` asks of a data-parallel reduction.

    A step calls :meth:`shares` first; ``None`` means one process, and the step then calls nothing else.
    Otherwise it scales its numbers by the shares and sums them with :meth:`all_reduce` (blocking) or, when
    :attr:`overlap` is set, with :meth:`start`-ed pieces finished by :meth:`wait`.
    """

    #: Whether the collectives are started during the backward passes (then ``members`` must be 1).
    overlap: bool
    #: All-reduces made so far and the elements they summed.
    collectives: int
    reduced_elements: int

    def attach(self, leaves: Sequence[Tensor], offsets: Sequence[int], n_params: int, members: int) -> None:
        """Called once by the backward with its trainable tensors, their offsets in the ``[P]`` row, ``P``
        and ``S`` (e.g. to cut the row into buckets)."""

    def shares(self, shard_weights: Union[Tensor, Sequence[float], None], term_names: Sequence[str],
               like: Tensor) -> Optional[Tensor]:
        """``[1, K]`` this rank's shares of the term losses (dtype and device of ``like``), or ``None``
        when nothing is reduced."""

    def all_reduce(self, buffer: Tensor, losses: Optional[Tensor] = None, with_losses: bool = True) -> None:
        """Sum ``buffer`` over the ranks, blocking. With ``losses`` it is a packed buffer: its slot is filled
        with ``losses`` (``with_losses``) or zeros first, and the global losses are read back after."""

    def start(self, piece: Tensor) -> None:
        """Start summing a contiguous piece of a buffer; finished by :meth:`wait`."""

    def start_columns(self, buffer: Tensor, lo: int, hi: int, n_params: int) -> None:
        """Start columns ``[lo, hi)`` of a packed ``[P]`` gradient; the piece at the row's end takes the
        loss slot behind it along."""

    def row_pieces(self, buffer: Tensor, losses: Tensor, shares: Tensor, n_params: int) -> Callable[[int, bool], None]:
        """For an overlapped update step: a callback ``done(k, last)`` for after term ``k``'s backward into
        row ``k`` of the packed ``G`` ``buffer`` (``S = 1``): it scales the row by its share and starts the
        rows that are final once they hold enough elements (the last rows with the losses packed behind)."""

    def buckets(self, on_ready: Callable[[int, int], None]) -> ContextManager[None]:
        """Around one backward: ``on_ready(lo, hi)`` for each bucket of the row (``S = 1``) as autograd
        finishes it, in bucket order; after the backward, for the buckets left."""

    def wait(self, buffer: Optional[Tensor] = None, losses: Optional[Tensor] = None, with_losses: bool = True) -> None:
        """Wait for every started piece; with ``losses`` (and ``with_losses``) read the global losses back
        from the packed ``buffer``'s slot."""

    def abandon(self) -> None:
        """After an error mid-step: let the started collectives finish without raising a second error."""


class LocalReducer:
    """One process: :meth:`shares` is ``None``, so a step reduces and scales nothing (the one-rank case)."""

    overlap = False

    def __init__(self) -> None:
        self.collectives = 0
        self.reduced_elements = 0

    def attach(self, leaves: Sequence[Tensor], offsets: Sequence[int], n_params: int, members: int) -> None:
        pass

    def shares(self, shard_weights: Union[Tensor, Sequence[float], None], term_names: Sequence[str],
               like: Tensor) -> Optional[Tensor]:
        return None

    def all_reduce(self, buffer: Tensor, losses: Optional[Tensor] = None, with_losses: bool = True) -> None:
        pass

    def start(self, piece: Tensor) -> None:
        pass

    def start_columns(self, buffer: Tensor, lo: int, hi: int, n_params: int) -> None:
        pass

    def row_pieces(self, buffer: Tensor, losses: Tensor, shares: Tensor, n_params: int) -> Callable[[int, bool], None]:
        return lambda k, last: None

    def buckets(self, on_ready: Callable[[int, int], None]) -> ContextManager[None]:
        return contextlib.nullcontext()

    def wait(self, buffer: Optional[Tensor] = None, losses: Optional[Tensor] = None, with_losses: bool = True) -> None:
        pass

    def abandon(self) -> None:
        pass

    def __repr__(self) -> str:
        return "LocalReducer()"


class _Buckets:
    """The parameter row (``S = 1``) cut into contiguous ranges ``[lo, hi)`` of whole trainable tensors, in
    the order a backward usually finishes them: from the row's end down (the output layer's gradient is
    computed first). Each holds at least ``min_elements`` (a smaller rest joins the bucket before it).

    :meth:`started` hooks the tensors' gradient accumulation (``register_post_accumulate_grad_hook``, which
    fires after autograd has added into the preallocated ``.grad`` view in place) and hands each bucket to
    ``on_ready`` once all its tensors are final -- always in bucket order, so every rank issues the same
    collectives in the same order whatever order its hooks fire in, DDP-style.
    """

    def __init__(self, leaves: Sequence[Tensor], offsets: Sequence[int], n_params: int, min_elements: int) -> None:
        self.leaves = list(leaves)
        self.ranges: list[tuple[int, int]] = []
        members: list[list[int]] = []
        hi, cur = n_params, []
        for i in sorted(range(len(self.leaves)), key=lambda i: offsets[i], reverse=True):
            cur.append(i)
            if hi - offsets[i] >= min_elements:
                self.ranges.append((offsets[i], hi))
                members.append(cur)
                hi, cur = offsets[i], []
        if cur:
            if self.ranges:
                self.ranges[-1] = (0, self.ranges[-1][1])
                members[-1] += cur
            else:
                self.ranges.append((0, n_params))
                members.append(cur)
        self._sizes = [len(m) for m in members]
        self._bucket_of = {i: b for b, m in enumerate(members) for i in m}

    @contextlib.contextmanager
    def started(self, on_ready: Callable[[int, int], None]) -> Iterator[None]:
        """Around one backward: ``on_ready(lo, hi)`` per bucket as it becomes final; after the backward,
        for the buckets left (tensors this loss does not reach keep the gradient they have)."""
        left = list(self._sizes)
        nxt = 0

        def flush() -> None:
            nonlocal nxt
            while nxt < len(left) and left[nxt] <= 0:
                nxt += 1
                on_ready(*self.ranges[nxt - 1])

        def hook_for(b: int) -> Callable[[Tensor], None]:
            def hook(_: Tensor) -> None:
                left[b] -= 1
                flush()
            return hook

        handles = [leaf.register_post_accumulate_grad_hook(hook_for(self._bucket_of[i]))
                   for i, leaf in enumerate(self.leaves)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()
        left[:] = [0] * len(left)
        flush()


class AllReduceReducer:
    """Sums the packed buffers over a ``torch.distributed`` process group (``SUM`` all-reduces).

    Args:
        process_group: the group (e.g. ``torch.distributed.group.WORLD``); it must be initialised before
            the first step.
        overlap: ``False`` (default; measured no faster on CPUs with gloo, see
            ``bench/bench_distributed.py --overlap``): one blocking all-reduce after the backward passes.
            ``True``: all-reduces of the pieces of the buffer started as they become final, beside the
            backward passes still running; the same numbers are summed into the same buffers, so the results
            equal the blocking ones -- bit for bit with 2 ranks; with more, a collective may add the ranks'
            numbers in an order that depends on where an element sits in the buffer (ring segments), so to
            rounding, and still alike on every rank. Needs ``members=1`` (for ``S > 1`` a term's slice
            ``G[:, k]`` and a layer's gradient are strided, and collectives need contiguous buffers).
        bucket_elements: with ``overlap``, the least elements of one collective (default ``2**16``): a piece
            is started once this much is final, so a small network still makes one collective per step (a
            tiny all-reduce costs its latency, which overlap does not hide).

    One reducer serves one :class:`~fastpinn.WeightedBackward` (pass it as ``reducer=``).
    """

    def __init__(self, process_group: Any, *, overlap: bool = False,
                 bucket_elements: int = DEFAULT_BUCKET_ELEMENTS) -> None:
        self.process_group = process_group
        self.overlap = check_flag("overlap", overlap)
        self.bucket_elements = check_int("bucket_elements", bucket_elements, minimum=1)
        self.collectives = 0
        self.reduced_elements = 0
        self._attached = False
        self._buckets: Optional[_Buckets] = None
        self._works: list[Any] = []  # in-flight async all-reduces of this step

    def attach(self, leaves: Sequence[Tensor], offsets: Sequence[int], n_params: int, members: int) -> None:
        if self._attached:  # its buckets hook one backward's tensors, its counters count one backward's steps
            raise ValueError("this AllReduceReducer already serves a WeightedBackward; make one per WeightedBackward")
        check_overlap_members(self.overlap, members)
        self._attached = True
        self._buckets = _Buckets(leaves, offsets, n_params, self.bucket_elements) if self.overlap else None

    def shares(self, shard_weights: Union[Tensor, Sequence[float], None], term_names: Sequence[str],
               like: Tensor) -> Tensor:
        K = len(term_names)
        if shard_weights is None:
            import torch.distributed as dist

            return torch.full((1, K), 1.0 / dist.get_world_size(self.process_group), dtype=like.dtype,
                              device=like.device)
        share = torch.as_tensor(shard_weights, dtype=like.dtype, device=like.device).reshape(-1)
        if share.numel() != K:
            raise ValueError(f"shard_weights must hold one share per term ({K}: {list(term_names)}), "
                             f"got {share.numel()}")
        return share.reshape(1, K)

    def all_reduce(self, buffer: Tensor, losses: Optional[Tensor] = None, with_losses: bool = True) -> None:
        slot = pack_losses(buffer, losses, with_losses) if losses is not None else None
        self._collective(buffer, async_op=False)
        if slot is not None and with_losses:
            losses.copy_(slot)

    def start(self, piece: Tensor) -> None:
        self._works.append(self._collective(piece, async_op=True))

    def start_columns(self, buffer: Tensor, lo: int, hi: int, n_params: int) -> None:
        self.start(buffer[lo:] if hi == n_params else buffer[lo:hi])

    def row_pieces(self, buffer: Tensor, losses: Tensor, shares: Tensor, n_params: int) -> Callable[[int, bool], None]:
        P = n_params
        started = 0  # buffer[:started] is in flight

        def done(k: int, last: bool) -> None:
            nonlocal started
            buffer[k * P:(k + 1) * P].mul_(shares[0, k])  # the row is final: scale it
            if last:
                pack_losses(buffer, losses, True)
                self.start(buffer[started:])
            elif (k + 1) * P - started >= self.bucket_elements:
                self.start(buffer[started:(k + 1) * P])
                started = (k + 1) * P

        return done

    def buckets(self, on_ready: Callable[[int, int], None]) -> ContextManager[None]:
        if self._buckets is None:
            raise RuntimeError("buckets need overlap=True and attach() (WeightedBackward calls it)")
        return self._buckets.started(on_ready)

    def wait(self, buffer: Optional[Tensor] = None, losses: Optional[Tensor] = None, with_losses: bool = True) -> None:
        try:
            while self._works:
                self._works[0].wait()
                self._works.pop(0)
        except RuntimeError as exc:  # torch.distributed.DistError is one
            self.abandon()
            raise self._collective_failed(exc) from exc
        if buffer is not None and losses is not None and with_losses:
            losses.copy_(loss_slot(buffer, losses))

    def abandon(self) -> None:
        # the peers joined the started collectives, and they write into buffers the next step reuses
        works, self._works = self._works, []
        for work in works:
            with contextlib.suppress(RuntimeError):
                work.wait()

    def _collective(self, buffer: Tensor, async_op: bool) -> Any:
        import torch.distributed as dist

        try:
            work = dist.all_reduce(buffer, op=dist.ReduceOp.SUM, group=self.process_group, async_op=async_op)
        except (RuntimeError, dist.DistError) as exc:
            raise self._collective_failed(exc) from exc
        self.collectives += 1
        self.reduced_elements += buffer.numel()
        return work

    def _collective_failed(self, exc: BaseException) -> CollectiveError:
        import torch.distributed as dist

        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CollectiveError(
            f"rank {dist.get_rank(self.process_group)} of {dist.get_world_size(self.process_group)}: the "
            f"gradient all-reduce (a collective every rank must join) failed: {first}. Another rank has "
            "probably died or stalled past the process group's timeout; the job stops here -- rerun it "
            "(resuming from the last checkpoint)")

    def __repr__(self) -> str:
        return (f"AllReduceReducer(overlap={self.overlap}, bucket_elements={self.bucket_elements}, "
                f"collectives={self.collectives})")


def check_overlap_members(overlap: bool, members: int) -> None:
    """Overlapped collectives need one network (``members=1``): else a ``ValueError`` saying why."""
    if overlap and members > 1:
        raise ValueError(f"overlap=True needs members=1, got members={members}: with an ensemble a term's gradients "
                         "G[:, k] and a layer's are strided over the members, and a collective needs a "
                         "contiguous buffer; use overlap=False")


def make_reducer(process_group: Any = None, overlap: bool = False,
                 bucket_elements: int = DEFAULT_BUCKET_ELEMENTS) -> GradientReducer:
    """The reducer of :class:`~fastpinn.WeightedBackward`'s keyword arguments: an :class:`AllReduceReducer`
    over ``process_group``, or a :class:`LocalReducer` without one (``overlap`` and ``bucket_elements`` are
    checked either way, and have no effect then)."""
    check_flag("overlap", overlap)
    check_int("bucket_elements", bucket_elements, minimum=1)
    if process_group is None:
        return LocalReducer()
    return AllReduceReducer(process_group, overlap=overlap, bucket_elements=bucket_elements)
