"""Where a weighted backward's gradients live, and the backward passes that fill them.

A :class:`GradientBuffers` holds ``G[S, K, P]`` (row ``k``: term ``k``'s gradient) and the weighted gradient,
each in one flat buffer with a ``[S, K]`` loss slot behind it (a data-parallel step reduces gradient and losses
in one collective), and every trainable tensor's ``.grad`` views into them. Its passes are the three ways
``.grad`` gets filled: one backward per term straight into the rows of ``G`` (terms sharing one evaluation of
the fused jet op hand their cotangents to one batched backward, :mod:`fastpinn.ops.cotangents`; an overlapped
reduction starts each row as its pass ends), the combination ``sum_j lam_j G_j`` (one batched product), and one
backward of the weighted sum ``sum_j lam_j L_j``. Which of them a call runs, with which weights, and what is
reduced when, is :class:`~fastpinn.backward.WeightedBackward`'s.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor

from .ops.cotangents import CotangentBatch, batched_cotangents
from .params import ParameterRows
from .reducers import GradientReducer, pack_losses

__all__ = ["GradientBuffers"]


@contextlib.contextmanager
def _accumulating_into_views() -> Iterator[None]:
    """Autograd warns that ``.grad`` views strided unlike their ``[S, ...]`` parameters (an ensemble's
    slices of ``G``) cannot be stolen; that is fine -- it accumulates into them in place."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*gradient layout contract.*")
        yield


class GradientBuffers:
    """``G``, the weighted gradient and the trainable tensors' ``.grad`` views into them, and the passes
    filling them.

    Args:
        leaves: the trainable tensors; rows: where each sits in a row (:class:`~fastpinn.params.ParameterRows`).
        members: ``S``; n_terms: ``K``.
        flat: the flat blocks the trainable tensors alias (see :class:`~fastpinn.backward.WeightedBackward`'s
            ``flat``); each gets its part of the weighted gradient as ``.grad``.
        reducer: the gradient reducer (already attached), for the overlapped reduction's pieces.
        term_gradients: allocate ``G`` now (else on the first :meth:`allocate_G`).

    Attributes:
        G, G_packed, grad_packed, backward_passes, batched_backwards: as the WeightedBackward's of the same name.
    """

    def __init__(self, leaves: Sequence[Tensor], rows: ParameterRows, members: int, n_terms: int,
                 flat: Sequence[Tensor], reducer: GradientReducer, *, term_gradients: bool) -> None:
        self.leaves, self.rows, self.members, self.n_terms = leaves, rows, members, n_terms
        self.reducer = reducer
        S, K, P = members, n_terms, rows.n_params
        self.G_packed: Optional[Tensor] = None
        self.G: Optional[Tensor] = None
        self._G_views = None
        if term_gradients:
            self.allocate_G()
        self.flat = flat
        self.grad_packed = torch.zeros(S * P + S * K, dtype=rows.dtype, device=rows.device)
        self._grad_blocks = self._make_grad_blocks(flat, S, P, self.grad_packed)
        self._grad_views = self._leaf_grad_views()
        self.backward_passes = 0
        self.batched_backwards = 0
        # Only an ensemble's [S, ...] parameters get .grad views strided unlike themselves (autograd's warning,
        # silenced per backward); one network's views are contiguous like their tensors and skip the
        # warnings-filter context (~0.2 ms a step: a tiny problem's step is a few ms).
        self._quiet = _accumulating_into_views if S > 1 else contextlib.nullcontext

    def allocate_G(self) -> None:
        """``G`` and its views, zeroed (a fixed-weight scheme's on first use)."""
        S, K, P = self.members, self.n_terms, self.rows.n_params
        self.G_packed = torch.zeros(S * K * P + S * K, dtype=self.rows.dtype, device=self.rows.device)
        self.G = self.G_packed[:S * K * P].view(S, K, P)
        self._G_views = [self.rows.views(self.G[:, k]) for k in range(K)]

    @staticmethod
    def _make_grad_blocks(blocks: Sequence[Tensor], S: int, P: int, storage: Tensor) -> list[tuple[int, int, Tensor]]:
        """``(start, end, buffer[S, end - start])`` per flat block (one block over the row without them),
        each buffer a contiguous piece of ``storage``."""
        dtype, device = storage.dtype, storage.device
        if not blocks:
            return [(0, P, storage[:S * P].view(S, P))]
        out, start = [], 0
        for i, b in enumerate(blocks):
            if b.dtype != dtype or b.device != device or b.numel() % S:
                raise ValueError(f"flat[{i}] must hold a multiple of members={S} entries of {dtype} on {device}, "
                                 f"got {tuple(b.shape)} {b.dtype} on {b.device}")
            n = b.numel() // S
            if start + n <= P:
                out.append((start, start + n, storage[S * start:S * (start + n)].view(S, n)))
            start += n
        if start != P:
            raise ValueError(f"the flat blocks hold {start} entries per member, the trainable tensors {P}")
        return out

    def _leaf_grad_views(self) -> list[Tensor]:
        views = []
        for p, off, n in zip(self.leaves, self.rows.offsets, self.rows.sizes):
            for a, b, buf in self._grad_blocks:
                if a <= off and off + n <= b:
                    views.append(buf[:, off - a:off - a + n].view(p.shape))
                    break
            else:
                raise ValueError(f"a trainable tensor of shape {tuple(p.shape)} straddles two flat blocks")
        return views

    @property
    def grad(self) -> Tensor:
        """``[S, P]`` the last weighted gradient ``sum_j lam_j G_j`` (a copy when there are several blocks)."""
        if len(self._grad_blocks) == 1:
            return self._grad_blocks[0][2]
        return torch.cat([buf for _, _, buf in self._grad_blocks], dim=1)

    # ------------------------------------------------------------------------------------- passes
    def _keep_existing_grads(self, accumulate: bool) -> None:
        """With ``accumulate``, move gradients the caller already had into ``self.grad``."""
        if not accumulate:
            return
        for p, view in zip(self.leaves, self._grad_views):
            g = p.grad
            if g is None:
                view.zero_()
            elif g.data_ptr() != view.data_ptr():
                view.copy_(g)

    def term_backwards(self, items: Sequence[Tensor], accumulate: bool, losses: Tensor, *, shared_graph: bool,
                       batch_cotangents: bool, reduce_rows: Optional[Tensor] = None,
                       only: Optional[int] = None) -> None:
        """One backward per term into row ``k`` of ``G``. With ``reduce_rows`` ``[1, K]`` (the shares of an
        overlapped update step, ``S = 1``) each finished row is scaled by its share, and the reducer starts the
        final rows not yet in flight once they hold its ``bucket_elements`` (the last rows with the losses
        behind them), while the next term's backward runs. ``only``: run term ``only``'s backward alone (its
        row; the others stay zero). ``losses``: the ``[S, K]`` loss buffer packed behind ``G``;
        ``shared_graph``, ``batch_cotangents``: the WeightedBackward's."""
        self._keep_existing_grads(accumulate)
        self.G.zero_()
        last = len(items) - 1
        reducer = self.reducer
        row_done = None
        if reduce_rows is not None:
            row_done = reducer.row_pieces(self.G_packed, losses, reduce_rows, self.rows.n_params)
        # Terms sharing one evaluation: the fused network backward runs once for all of them after the passes
        # (fastpinn.ops.cotangents). Not with the overlapped reduction, which sends each row as its pass ends.
        batching = (batch_cotangents and shared_graph and len(items) > 1 and only is None
                    and row_done is None)
        try:
            with self._quiet(), (batched_cotangents() if batching else contextlib.nullcontext()) as batch:
                for k, loss in enumerate(items):
                    if only is not None and k != only:
                        if row_done is not None:
                            row_done(k, k == last)
                        continue
                    for p, view in zip(self.leaves, self._G_views[k]):
                        p.grad = view
                    if batch is not None:
                        batch.term = k
                    retain = shared_graph and k < last and only is None
                    torch.autograd.backward(loss.sum(), inputs=self.leaves, retain_graph=retain)
                    self.backward_passes += 1
                    if row_done is not None:
                        row_done(k, k == last)
                if batch is not None:
                    self._add_deferred(batch)
        except BaseException:
            reducer.abandon()
            raise

    def _add_deferred(self, batch: CotangentBatch) -> None:
        """Add the batched network backwards' per-term gradients to their rows of ``G``."""
        index = {id(p): i for i, p in enumerate(self.leaves)}
        before = batch.batched_calls
        for k, leaf, grad in batch.flush():
            i = index.get(id(leaf))
            if i is not None:  # a tensor this object does not train gets no row
                self._G_views[k][i].add_(grad)
        self.batched_backwards += batch.batched_calls - before

    def combine(self, lam: Tensor, accumulate: bool, rows: Optional[Tensor] = None) -> None:
        """``.grad`` = ``sum_j lam_j G_j`` (plus what was there with ``accumulate``), one batched product, for
        the weights ``lam`` ``[S, K]``; ``rows``: ``[S, K, P]`` to combine instead of ``G`` (M-ConFIG's momenta)."""
        rows = self.G if rows is None else rows
        lam = lam.to(rows.dtype).unsqueeze(1)  # [S, 1, K]
        whole = len(self._grad_blocks) == 1
        for a, b, buf in self._grad_blocks:
            out = buf.unsqueeze(1)  # [S, 1, n], a view: bmm writes the buffer in place
            G = rows if whole else rows[:, :, a:b]
            if accumulate:
                out.baddbmm_(lam, G)
            else:
                torch.bmm(lam, G, out=out)
        self._point_grads()

    def fixed_backward(self, lam: Tensor, stacked: Tensor, accumulate: bool, losses: Tensor,
                       share: Optional[Tensor] = None, with_losses: Optional[bool] = None) -> None:
        """One backward of the sum of the term losses ``stacked`` ``[S, K]`` weighted by ``lam`` ``[S, K]`` into
        ``.grad``; with ``with_losses`` set (overlap), the loss slot is packed (the ``[S, K]`` ``losses`` or zeros)
        and each bucket the backward finishes starts its all-reduce."""
        self._keep_existing_grads(accumulate)
        if not accumulate:
            for _, _, buf in self._grad_blocks:
                buf.zero_()
        if share is not None:
            lam = lam * share  # this rank's part of the gradient of the global weighted loss
        # sum_j lam_j L_j as one product of [S, K] tensors: the backward hands every L_j exactly lam_j, as a sum of
        # K products does, and the term graphs are walked in the same order (bit-identical gradients), in 3 ops
        # and 3 graph nodes instead of ~4 K (a tiny problem's whole step is a few hundred microseconds)
        total = (lam * stacked).sum()
        self._point_grads()
        if with_losses is None:
            with self._quiet():
                torch.autograd.backward(total, inputs=self.leaves)
        else:
            pack_losses(self.grad_packed, losses, with_losses)
            P = self.rows.n_params
            try:
                with self._quiet(), \
                        self.reducer.buckets(lambda lo, hi: self.reducer.start_columns(self.grad_packed, lo, hi, P)):
                    torch.autograd.backward(total, inputs=self.leaves)
            except BaseException:
                self.reducer.abandon()
                raise
        self.backward_passes += 1

    def _point_grads(self) -> None:
        """Point every trainable tensor's and flat block's ``.grad`` at its part of the weighted gradient."""
        for p, view in zip(self.leaves, self._grad_views):
            p.grad = view
        for block, (_, _, buf) in zip(self.flat, self._grad_blocks):
            block.grad = buf.view(block.shape)
