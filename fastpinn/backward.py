"""The weighted backward: per-term gradients into ``G[S, K, P]``, the loss weights, and ``.grad``.

The one piece every training loop uses, the :class:`~fastpinn.Trainer`'s included::

    wb = fastpinn.WeightedBackward(model, fastpinn.DN(beta=0.9), terms=["pde", "ic", "bc"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(n_steps):
        losses = [loss_pde(model), loss_ic(model), loss_bc(model)]   # K scalar tensors
        lam = wb(losses)          # one backward per term into G, lambda on its tau schedule, .grad set
        opt.step()

Like ``torch.amp.GradScaler`` it is a small stateful object beside the optimizer: it owns the gradient
matrix, the :class:`~fastpinn.Weighter` and the update schedule (an :class:`UpdateGate`), and has
``state_dict()``/``load_state_dict()`` for checkpoints.

How a call works depends only on what the scheme reads (:attr:`Weighter.reads`):

* ``"stats"`` (MA, ID, DN, LRA, grad-norm, GradNorm): ``G`` is zeroed; for each term the trainable
  tensors' ``.grad`` point at their slices of row ``k`` of ``G`` and that term's backward runs, so
  autograd accumulates straight into ``G`` (no per-term gradient copies; the graph is freed after the last
  term). On an update step the fused statistics of ``G`` and the EMA give new weights. Then ``.grad`` of
  every trainable tensor is set to its slice of ``sum_j lam_j G_j`` (one batched matrix product into a
  fixed buffer).
* ``"losses"`` (SoftAdapt, ReLoBRaLo, uncertainty weighting): on an update step the weights come from
  the term losses themselves, then one backward of ``sum_j lam_j L_j`` -- a PINN-cost step, no ``G``.
* ``"traces"`` (NTK): on an update step from the per-term NTK traces the caller provides (``traces=``),
  then one backward of the weighted sum.
* ``"fixed"`` (PINN): one backward of the weighted sum.

Data-parallel training (``process_group=``, see the README section "Scale out with torch.distributed"):
each rank passes its terms' *local* losses (means over its own points) and ``shard_weights[k] = n_rk /
N_k`` (its share of term ``k``'s points in this step). Row ``k`` of the local ``G`` is scaled by that
share and summed over the ranks, which gives the gradient of the *global* mean ``sum_r n_rk / N_k
L_rk`` on every rank -- correct for unequal shards and mini-batches -- and the losses are reduced the
same way. On an update step (``"stats"`` schemes) that is one all-reduce of ``G`` with the losses
packed behind it, so the statistics and ``lambda`` come from the reduced ``G`` and are bit-identical on
every rank; on any other step the weighted gradient is linear in ``G``, so only the combined ``[S, P]``
gradient (losses packed behind it) is reduced: ``K`` times less data. Without a process group nothing is
reduced and nothing is scaled: the single process is the one-rank case.

With ``overlap=True`` (one network, ``S = 1``) those collectives run asynchronously beside the backward
passes, as soon as a piece of the buffer is final: on an update step row ``k`` of ``G`` once term ``k``'s
backward is done (its all-reduce runs while term ``k + 1``'s backward does), on the other steps buckets
of the combined gradient, layer groups started from a post-accumulate-grad hook as the last backward
finishes them (DDP-style). The same numbers are summed into the same buffers, so the results equal the
blocking ones -- bit for bit with 2 ranks; with more, a collective may add the ranks' numbers in an order
that depends on where an element sits in the buffer (ring segments), so to rounding, and still alike on
every rank. More (smaller) collectives are made, each at least ``bucket_elements`` long.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .collectives import CollectiveError
from .params import ParameterRows, trainable_tensors
from .schemes import Scheme
from .weighter import Weighter

__all__ = ["WeightedBackward", "UpdateGate", "HostGate", "DeviceGate"]

LossesLike = Union[Tensor, Sequence[Tensor]]


class UpdateGate:
    """Decides at which steps the loss weights update: steps ``0, period, 2 period, ...`` counted from the
    gate's start, ``period = tau * steps_per_epoch`` (the first mini-batch of every ``tau``-th epoch),
    shifted to start at ``first_step``.

    Two kinds: :class:`HostGate` counts on the host (a plain int: no sync, statistics only on update
    steps) and :class:`DeviceGate` counts in a device tensor (the decision never reaches Python, so the
    step can be captured in a CUDA graph; statistics run every step, the EMA is masked off between updates).
    """

    def __init__(self, period: int, first_step: int = 0) -> None:
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ValueError(f"period must be an integer >= 1, got {period!r}")
        if isinstance(first_step, bool) or not isinstance(first_step, int) or first_step < 0:
            raise ValueError(f"first_step must be an integer >= 0, got {first_step!r}")
        self.period = period
        self.first_step = first_step

    def decide(self) -> Union[bool, Tensor]:
        raise NotImplementedError

    def advance(self) -> None:
        raise NotImplementedError

    def set_step(self, step: int) -> None:
        """Set the step count (e.g. ``epoch * steps_per_epoch`` after a resume)."""
        raise NotImplementedError

    @property
    def step(self) -> int:
        """The step count (reads the device for a :class:`DeviceGate`)."""
        raise NotImplementedError

    def state_tensors(self) -> list[Tensor]:
        """Device tensors a captured CUDA graph mutates (snapshotted around capture)."""
        return []


class HostGate(UpdateGate):
    """:class:`UpdateGate` with the step count in a Python int."""

    def __init__(self, period: int, first_step: int = 0) -> None:
        super().__init__(period, first_step)
        self._step = 0

    def decide(self) -> bool:
        since = self._step - self.first_step
        return since >= 0 and since % self.period == 0

    def advance(self) -> None:
        self._step += 1

    def set_step(self, step: int) -> None:
        self._step = int(step)

    @property
    def step(self) -> int:
        return self._step


class DeviceGate(UpdateGate):
    """:class:`UpdateGate` with the step count in a device tensor; :meth:`decide` writes a 0-dim bool
    tensor into a fixed buffer (same address every call, nothing allocated)."""

    def __init__(self, period: int, first_step: int = 0, device: Union[str, torch.device, None] = None) -> None:
        super().__init__(period, first_step)
        self.counter = torch.zeros((), dtype=torch.int64, device=device)
        self._since = torch.zeros((), dtype=torch.int64, device=device)
        self._started = torch.zeros((), dtype=torch.bool, device=device)
        self.active = torch.zeros((), dtype=torch.bool, device=device)

    def decide(self) -> Tensor:
        torch.sub(self.counter, self.first_step, out=self._since)
        torch.ge(self._since, 0, out=self._started)
        torch.remainder(self._since, self.period, out=self._since)
        torch.eq(self._since, 0, out=self.active)
        self.active.logical_and_(self._started)
        return self.active

    def advance(self) -> None:
        self.counter.add_(1)

    def set_step(self, step: int) -> None:
        self.counter.fill_(int(step))  # from a host int: no sync

    @property
    def step(self) -> int:
        return int(self.counter)

    def state_tensors(self) -> list[Tensor]:
        return [self.counter]


def _gate(kind: str, period: int, first_step: int, device: torch.device) -> UpdateGate:
    if kind == "host":
        return HostGate(period, first_step)
    if kind == "device":
        return DeviceGate(period, first_step, device)
    raise ValueError(f"gate must be 'host' or 'device', got {kind!r}")


@contextlib.contextmanager
def _accumulating_into_views() -> Iterator[None]:
    """Autograd warns that ``.grad`` views strided unlike their ``[S, ...]`` parameters (an ensemble's
    slices of ``G``) cannot be stolen; that is fine -- it accumulates into them in place."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*gradient layout contract.*")
        yield


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


class WeightedBackward:
    """Per-term backward, loss weights and weighted ``.grad`` for any model.

    Args:
        parameters: an ``nn.Module`` or an iterable of tensors; the ones with ``requires_grad`` are
            trained (frozen parameters are left alone). For an ensemble of ``S`` networks held in
            ``[S, ...]`` tensors (e.g. ``fastpinn.MLP(..., ensemble=S).leaves()``) pass ``members=S``.
        scheme: ``fastpinn.PINN()``, ``MA(...)``, ``ID(...)`` or ``DN(...)``.
        terms: the term names (their order is the order of the losses) or their number ``K``.
        reference: the reference term (index or name; weight fixed at 1): the PDE residual, term 0 by default.
        adaptive: which terms get dynamic weights (``[K]`` bools); default all but the reference.
        members: ``S``, the ensemble size (default 1).
        steps_per_epoch: calls per epoch; the weights update on the first call of every ``scheme.tau``-th
            epoch (default 1: every call is an epoch, i.e. full-batch training).
        first_update: the epoch of the first weight update (default 0; then every ``tau`` epochs).
        gate: ``"host"`` (default) or ``"device"`` (see :class:`UpdateGate`).
        backend: op backend of the statistics and EMA (``"auto"``, ``"cpp"``, ``"triton"``, ``"torch"``).
        flat: optional flat tensor ``[P]`` (``[S, P]``) whose storage the trainable tensors alias (see
            :func:`fastpinn.params.flatten_parameters`, ``fastpinn.MLP.theta``), or several such blocks
            that lay out the row end to end (e.g. the network's ``theta`` then a PDE's trainable
            coefficients); each block's ``.grad`` is set to its part of the weighted gradient (a
            contiguous buffer of its own), so an optimizer built on the blocks steps everything at once.
        shared_graph: ``True`` (default): the term losses may share one autograd graph (e.g. one forward
            pass), so it is kept until the last term's backward. ``False``: each loss has its own graph
            (as in the Trainer, one forward per term), which then need not be retained -- and must not
            be for ``torch.compile``d losses, whose compiled backward frees its buffers.
        process_group: a ``torch.distributed`` process group (or ``torch.distributed.group.WORLD``) to
            reduce the term gradients and losses over (data parallelism over points); ``None``
            (default): one process, nothing reduced. Each call then takes ``shard_weights``.
        overlap: ``False`` (default; measured no faster on CPUs with gloo, see
            ``bench/bench_distributed.py --overlap``): each step's gradient reduction is one blocking
            all-reduce after the backward passes. ``True``: start all-reduces of the pieces of the
            buffer as they become final, overlapped with the backward passes still running (see the
            module docstring); same results, more collectives. Needs ``members=1`` (for ``S > 1`` a term's
            slice ``G[:, k]`` and a layer's gradient are strided, and collectives need contiguous
            buffers). No effect without a process group.
        bucket_elements: with ``overlap``, the least elements of one collective (default ``2**16``):
            a piece is started once this much is final, so a small network still makes one collective
            per step (a tiny all-reduce costs its latency, which overlap does not hide).

    Attributes:
        G: ``[S, K, P]`` the last per-term gradients (``None`` for a fixed-weight scheme).
        losses: ``[S, K]`` the last call's detached term losses (a fixed buffer).
        weighted_loss: ``[S]`` the last call's ``sum_j lam_j L_j`` (detached, computed when read; e.g. for an
            L-BFGS closure).
        weighter: the :class:`~fastpinn.Weighter` holding the weights.
        gate: the :class:`UpdateGate`.
        backward_passes: autograd backward calls made so far (K per dynamic step, 1 per fixed step).
        collectives, reduced_elements: all-reduces made so far and the elements they summed.
        overlap: whether the collectives overlap the backward passes.
    """

    def __init__(
        self,
        parameters: Union[nn.Module, Iterable[Tensor]],
        scheme: Scheme,
        terms: Union[Sequence[str], int],
        *,
        reference: Union[int, str] = 0,
        adaptive: Optional[Sequence[bool]] = None,
        members: int = 1,
        steps_per_epoch: int = 1,
        first_update: int = 0,
        gate: str = "host",
        backend: str = "auto",
        flat: Union[Tensor, Sequence[Tensor], None] = None,
        shared_graph: bool = True,
        process_group: Any = None,
        overlap: bool = False,
        bucket_elements: int = 1 << 16,
    ) -> None:
        self.leaves = trainable_tensors(parameters)
        self.rows = ParameterRows(self.leaves, members)
        if isinstance(terms, int) and not isinstance(terms, bool):
            if terms < 1:
                raise ValueError(f"terms must be a list of names or an integer >= 1, got {terms!r}")
            names = [f"term{k}" for k in range(terms)]
        else:
            names = [str(t) for t in terms]
            if not names or len(set(names)) != len(names):
                raise ValueError(f"terms must be distinct names (at least one), got {list(terms)}")
        self.term_names = names
        if isinstance(reference, str):
            if reference not in names:
                raise ValueError(f"reference must be one of the term names {names}, got {reference!r}")
            reference = names.index(reference)
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be an integer >= 1, got {steps_per_epoch!r}")
        self.steps_per_epoch = steps_per_epoch
        if isinstance(first_update, bool) or not isinstance(first_update, int) or first_update < 0:
            raise ValueError(f"first_update must be an integer >= 0 (an epoch), got {first_update!r}")
        self.weighter = Weighter(scheme, n_terms=len(names), reference=reference, adaptive=adaptive, backend=backend,
                                 first_update=first_update)
        S, K, P = members, len(names), self.rows.n_params
        dtype, device = self.rows.dtype, self.rows.device
        self.members = S
        self.weighter.reset(S, dtype, device)
        tau = getattr(scheme, "tau", 1)
        self.gate = _gate(gate, tau * steps_per_epoch, first_update * steps_per_epoch, device)
        self.reads = self.weighter.reads
        self.process_group = process_group
        # G and the weighted gradient each live in one flat buffer with a [S, K] loss slot behind them, so
        # a data-parallel step reduces gradient and losses in a single collective.
        self._G_comm: Optional[Tensor] = None
        self.G: Optional[Tensor] = None
        self._G_views = None
        if self.reads == "stats":
            self._allocate_G()
        blocks = [] if flat is None else ([flat] if isinstance(flat, Tensor) else list(flat))
        self.flat = blocks
        self._grad_comm = torch.zeros(S * P + S * K, dtype=dtype, device=device)
        self._grad_blocks = self._make_grad_blocks(blocks, S, P, self._grad_comm)
        self._grad_views = self._leaf_grad_views()
        self.losses = torch.zeros(S, K, dtype=dtype, device=device)
        #: ``[S, K]`` int64: calls in which a term's loss was NaN/Inf (counted on the device, never synced).
        self.nonfinite_losses = torch.zeros(S, K, dtype=torch.int64, device=device)
        if not isinstance(shared_graph, bool):
            raise ValueError(f"shared_graph must be True or False, got {shared_graph!r}")
        self.shared_graph = shared_graph
        self.backward_passes = 0
        #: All-reduces made and the elements they moved (data parallelism; 0 without a process group).
        self.collectives = 0
        self.reduced_elements = 0
        if not isinstance(overlap, bool):
            raise ValueError(f"overlap must be True or False, got {overlap!r}")
        if isinstance(bucket_elements, bool) or not isinstance(bucket_elements, int) or bucket_elements < 1:
            raise ValueError(f"bucket_elements must be an integer >= 1, got {bucket_elements!r}")
        if overlap and S > 1:
            raise ValueError(f"overlap=True needs members=1, got members={S}: with an ensemble a term's gradients "
                             "G[:, k] and a layer's are strided over the members, and a collective needs a "
                             "contiguous buffer; use overlap=False")
        self.overlap = overlap
        self.bucket_elements = bucket_elements
        self._buckets = _Buckets(self.leaves, self.rows.offsets, P, bucket_elements) if overlap else None
        self._works: list[Any] = []  # in-flight async all-reduces of this call

    def _allocate_G(self) -> None:
        S, K, P = self.members, len(self.term_names), self.rows.n_params
        self._G_comm = torch.zeros(S * K * P + S * K, dtype=self.rows.dtype, device=self.rows.device)
        self.G = self._G_comm[:S * K * P].view(S, K, P)
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

    # ----------------------------------------------------------------------------------------- call
    def _stack_input(self, losses: LossesLike) -> list[Tensor]:
        """The ``K`` term losses, each ``[S]`` (``[]`` accepted for ``S = 1``)."""
        K, S = len(self.term_names), self.members
        if isinstance(losses, Tensor):
            if losses.dim() == 1 and S == 1 and losses.shape[0] == K:
                return list(losses.unbind(0))
            if losses.dim() == 2 and tuple(losses.shape) == (S, K):
                return list(losses.unbind(1))
            raise ValueError(f"losses must be [K={K}] (one network) or [S={S}, K={K}], got {tuple(losses.shape)}")
        items = list(losses)
        if len(items) != K:
            raise ValueError(f"losses must hold one loss per term ({K}: {self.term_names}), got {len(items)}")
        for name, loss in zip(self.term_names, items):
            if not isinstance(loss, Tensor):
                raise ValueError(f"loss of term {name!r} must be a torch.Tensor, got {type(loss).__name__}")
            if not (loss.numel() == S and loss.dim() <= 1):
                raise ValueError(f"loss of term {name!r} must be a scalar (one network) or [S={S}], "
                                 f"got shape {tuple(loss.shape)}")
        return items

    def __call__(self, losses: LossesLike, *, accumulate: bool = False, update: Optional[bool] = None,
                 traces: Union[Tensor, Callable[[], Tensor], None] = None,
                 shard_weights: Union[Tensor, Sequence[float], None] = None) -> Tensor:
        """Back-propagate the weighted sum of the term losses and return the weights applied.

        Args:
            losses: the ``K`` unweighted term losses: a sequence of scalars (``[S]`` each for an
                ensemble) or a tensor ``[K]`` / ``[S, K]``, differentiable w.r.t. the parameters.
            accumulate: add to the parameters' existing ``.grad`` (like ``backward()``) instead of
                replacing it.
            update: ``None`` (default): the gate decides and its step count advances by one.
                ``True``/``False`` (host gate only): force or skip the weight update without advancing
                the schedule, e.g. inside an L-BFGS closure that runs several times per step.
            traces: for an NTK scheme, the per-term traces ``[S, K]`` (:func:`fastpinn.ntk.term_traces`) or
                a callable returning them, called only on update steps (every step with the device gate).

        Returns:
            The weights applied in this step: ``[K]`` (``S = 1``) or ``[S, K]``; a view of the live state
            (the next update overwrites it; ``clone()`` to keep).
        """
        items = self._stack_input(losses)
        w = self.weighter
        gate = self.gate
        if update is None:
            decision = gate.decide()
        elif isinstance(gate, DeviceGate):
            raise ValueError("update=True/False needs the host gate; the device gate decides on the device")
        else:
            decision = bool(update)
        share = self._shares(shard_weights)
        if share is not None and accumulate:
            raise ValueError("accumulate=True cannot be combined with a process_group: the gradients already in "
                             ".grad would be summed over the ranks")
        detached = [loss.detach().reshape(self.members) for loss in items]
        torch.stack(detached, dim=-1, out=self.losses)
        if share is not None:
            self.losses.mul_(share)  # this rank's part of the global mean; summed over the ranks below
        # active: None = update now (host gate said yes), a device flag, or no update at all (host said no)
        run = isinstance(decision, Tensor) or decision
        active = decision if isinstance(decision, Tensor) else None
        overlap = share is not None and self.overlap
        if self.reads == "stats":
            if overlap and run:  # G's rows reduced as their backwards finish, the losses with the last one
                self._term_backwards(items, accumulate, reduce_rows=share)
                self._wait_all(self._G_comm)
            elif overlap:  # the combination of G reduced bucket by bucket as the last backward finishes it
                lam = self.weighter.lam_applied.to(self.G.dtype) * share
                self._pack_losses(self._grad_comm, True)
                self._term_backwards(items, accumulate, combine_buckets=lam.unsqueeze(1))
                self._point_grads()
                self._wait_all(self._grad_comm)
                return self._finish(update)
            else:
                self._term_backwards(items, accumulate)
                if share is not None and run:  # one collective: G[S, K, P] with the losses packed behind it
                    self.G.mul_(share.unsqueeze(-1))
                    self._all_reduce(self._G_comm)
            if run:
                w.update_from_stats(w.statistics(self.G), self.rows.n_params, active=active, losses=self.losses)
            # off update steps the shares fold into the K weights instead of a pass over G
            self._combine(accumulate, share if share is not None and not run else None)
            if share is not None and not run:  # linear in G: reduce the [S, P] combination instead
                self._all_reduce(self._grad_comm)
            return self._finish(update)
        if share is not None and run and self.reads == "losses":  # the update reads the global losses
            self._all_reduce(self.losses)
        if run and self.reads == "losses":
            w.update_from_losses(self.losses, active=active)  # before the backward: weights for this step
        elif run and self.reads == "traces":
            if share is not None:
                raise ValueError("NTK schemes are not supported with a process_group (the traces would be "
                                 "computed on one rank's points)")
            if traces is None:
                raise ValueError(f"scheme {w.scheme!r} reads NTK traces: pass traces= (a [S, K] tensor or a "
                                 "callable, e.g. lambda: fastpinn.ntk.term_traces(...))")
            w.update_from_traces(traces() if callable(traces) else traces, active=active)
        with_losses = not (run and self.reads == "losses")  # else reduced above, before the update
        if overlap:  # buckets of .grad reduced as the backward finishes them
            self._fixed_backward(items, accumulate, share, with_losses=with_losses)
            self._wait_all(self._grad_comm, with_losses=with_losses)
        else:
            self._fixed_backward(items, accumulate, share)
            if share is not None:
                self._all_reduce(self._grad_comm, with_losses=with_losses)
        return self._finish(update)

    def _shares(self, shard_weights: Union[Tensor, Sequence[float], None]) -> Optional[Tensor]:
        """``[1, K]`` this rank's shares of the term losses, or ``None`` without a process group."""
        if self.process_group is None:
            return None
        K = len(self.term_names)
        if shard_weights is None:
            import torch.distributed as dist

            return torch.full((1, K), 1.0 / dist.get_world_size(self.process_group), dtype=self.losses.dtype,
                              device=self.losses.device)
        share = torch.as_tensor(shard_weights, dtype=self.losses.dtype, device=self.losses.device).reshape(-1)
        if share.numel() != K:
            raise ValueError(f"shard_weights must hold one share per term ({K}: {self.term_names}), "
                             f"got {share.numel()}")
        return share.reshape(1, K)

    def _pack_losses(self, buffer: Tensor, with_losses: bool) -> Tensor:
        """Fill the loss slot behind a packed gradient buffer with this rank's scaled losses (or zeros)."""
        slot = buffer[buffer.numel() - self.losses.numel():].view_as(self.losses)
        if with_losses:
            slot.copy_(self.losses)
        else:
            slot.zero_()
        return slot

    def _all_reduce(self, buffer: Tensor, with_losses: bool = True) -> None:
        """Sum ``buffer`` over the ranks (blocking); when it is one of the packed gradient buffers, its loss
        slot is filled with this rank's scaled losses first and read back after (the global losses)."""
        packed = buffer is self._G_comm or buffer is self._grad_comm
        slot = self._pack_losses(buffer, with_losses) if packed else None
        self._collective(buffer, async_op=False)
        if slot is not None and with_losses:
            self.losses.copy_(slot)

    def _start(self, piece: Tensor) -> None:
        """Start the async all-reduce of a contiguous piece of a packed buffer (waited in :meth:`_wait_all`)."""
        self._works.append(self._collective(piece, async_op=True))

    def _wait_all(self, buffer: Tensor, with_losses: bool = True) -> None:
        """Wait for this call's async all-reduces of ``buffer``'s pieces; read back the reduced losses."""
        try:
            while self._works:
                self._works[0].wait()
                self._works.pop(0)
        except RuntimeError as exc:  # torch.distributed.DistError is one
            self._abandon()
            raise self._collective_failed(exc) from exc
        if with_losses:
            self.losses.copy_(buffer[buffer.numel() - self.losses.numel():].view_as(self.losses))

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

    def _finish(self, update: Optional[bool]) -> Tensor:
        w = self.weighter
        self.nonfinite_losses.add_(~torch.isfinite(self.losses))  # the global losses: alike on every rank
        if update is None:
            self.gate.advance()
        lam = w.lam_applied
        return lam[0] if self.members == 1 else lam

    @property
    def weighted_loss(self) -> Tensor:
        """``[S]`` ``sum_j lam_j L_j`` of the last call, with the weights it applied (a new tensor)."""
        return (self.losses * self.weighter.lam_applied).sum(dim=-1)

    def term_gradients(self, losses: LossesLike) -> Tensor:
        """Only the per-term backward: ``G[S, K, P]`` for these losses, weights and schedule untouched
        (e.g. for gradient histograms; a fixed-weight scheme gets a ``G`` buffer on first use). The
        parameters' ``.grad`` are left pointing into ``G``; the next call of the object resets them."""
        items = self._stack_input(losses)
        if self.G is None:
            self._allocate_G()
        self._term_backwards(items, accumulate=False)
        return self.G

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

    def _term_backwards(self, items: Sequence[Tensor], accumulate: bool, reduce_rows: Optional[Tensor] = None,
                        combine_buckets: Optional[Tensor] = None) -> None:
        """One backward per term into row ``k`` of ``G``. Overlapped reductions (``S = 1``):

        * ``reduce_rows`` ``[1, K]`` (the shares, an update step): each finished row is scaled by its share,
          and the final rows not yet in flight start their all-reduce once they hold ``bucket_elements``
          (the last rows with the losses behind them), while the next term's backward runs.
        * ``combine_buckets`` ``[1, 1, K]`` (weights times shares, another step): during the last backward
          each bucket it finishes gets its part of ``sum_j lam_j G_j`` written and its all-reduce started.
        """
        self._keep_existing_grads(accumulate)
        self.G.zero_()
        last = len(items) - 1
        P = self.rows.n_params
        started = 0  # self._G_comm[:started] is in flight
        try:
            with _accumulating_into_views():
                for k, loss in enumerate(items):
                    for p, view in zip(self.leaves, self._G_views[k]):
                        p.grad = view
                    retain = self.shared_graph and k < last
                    if combine_buckets is not None and k == last:
                        with self._buckets.started(lambda lo, hi: self._combine_bucket(combine_buckets, lo, hi)):
                            torch.autograd.backward(loss.sum(), inputs=self.leaves, retain_graph=retain)
                    else:
                        torch.autograd.backward(loss.sum(), inputs=self.leaves, retain_graph=retain)
                    self.backward_passes += 1
                    if reduce_rows is None:
                        continue
                    self._G_comm[k * P:(k + 1) * P].mul_(reduce_rows[0, k])  # the row is final: scale it
                    if k == last:
                        self._pack_losses(self._G_comm, True)
                        self._start(self._G_comm[started:])
                    elif (k + 1) * P - started >= self.bucket_elements:
                        self._start(self._G_comm[started:(k + 1) * P])
                        started = (k + 1) * P
        except BaseException:
            self._abandon()
            raise

    def _combine_bucket(self, lam: Tensor, lo: int, hi: int) -> None:
        """Columns ``[lo, hi)`` of the combined gradient (``S = 1``) from ``G``, and start their all-reduce."""
        P = self.rows.n_params
        # the blocking path's product on a column slice: the same K-term sum per column (bit-equal on CPU,
        # checked in tests/test_distributed.py; a GPU kernel picked for another width could round differently)
        torch.bmm(lam, self.G[:, :, lo:hi], out=self._grad_comm[:P].view(1, 1, P)[:, :, lo:hi])
        self._start_grad_bucket(lo, hi)

    def _start_grad_bucket(self, lo: int, hi: int) -> None:
        """Start the all-reduce of ``.grad``'s columns ``[lo, hi)``; the bucket at the row's end takes the
        loss slot behind it along (filled before the backward)."""
        P = self.rows.n_params
        self._start(self._grad_comm[lo:] if hi == P else self._grad_comm[lo:hi])

    def _abandon(self) -> None:
        """After an error mid-step: let the collectives already started finish (the peers joined them, and
        they write into buffers the next step reuses), without raising a second error."""
        works, self._works = self._works, []
        for work in works:
            with contextlib.suppress(RuntimeError):
                work.wait()

    def _combine(self, accumulate: bool, share: Optional[Tensor] = None) -> None:
        lam = self.weighter.lam_applied.to(self.G.dtype)
        lam = (lam if share is None else lam * share).unsqueeze(1)  # [S, 1, K]
        whole = len(self._grad_blocks) == 1
        for a, b, buf in self._grad_blocks:
            out = buf.unsqueeze(1)  # [S, 1, n], a view: bmm writes the buffer in place
            G = self.G if whole else self.G[:, :, a:b]
            if accumulate:
                out.baddbmm_(lam, G)
            else:
                torch.bmm(lam, G, out=out)
        self._point_grads()

    def _fixed_backward(self, items: Sequence[Tensor], accumulate: bool, share: Optional[Tensor] = None,
                        with_losses: Optional[bool] = None) -> None:
        """One backward of the weighted sum into ``.grad``; with ``with_losses`` set (overlap), the loss slot
        is packed (the losses or zeros) and each bucket the backward finishes starts its all-reduce."""
        self._keep_existing_grads(accumulate)
        if not accumulate:
            for _, _, buf in self._grad_blocks:
                buf.zero_()
        lam = self.weighter.lam_applied
        if share is not None:
            lam = lam * share  # this rank's part of the gradient of the global weighted loss
        total = sum((lam[:, k] * item.reshape(self.members)).sum() for k, item in enumerate(items))
        self._point_grads()
        if with_losses is None:
            with _accumulating_into_views():
                torch.autograd.backward(total, inputs=self.leaves)
        else:
            self._pack_losses(self._grad_comm, with_losses)
            try:
                with _accumulating_into_views(), self._buckets.started(self._start_grad_bucket):
                    torch.autograd.backward(total, inputs=self.leaves)
            except BaseException:
                self._abandon()
                raise
        self.backward_passes += 1

    def _point_grads(self) -> None:
        for p, view in zip(self.leaves, self._grad_views):
            p.grad = view
        for block, (_, _, buf) in zip(self.flat, self._grad_blocks):
            block.grad = buf.view(block.shape)

    # ---------------------------------------------------------------------------------------- state
    def weights(self) -> Tensor:
        """The weights applied now: ``[K]`` (``S = 1``) or ``[S, K]``."""
        lam = self.weighter.lam_applied
        return lam[0] if self.members == 1 else lam

    def set_schedule_step(self, step: int) -> None:
        """Set the weight-update schedule's step count (e.g. ``epoch * steps_per_epoch`` when a trainer
        continues after a resume); from a host int, so no sync."""
        self.gate.set_step(step)

    def state_tensors(self) -> list[Tensor]:
        """Every device tensor a step mutates that is training state (for snapshots around CUDA-graph
        capture): the weighter's state, the gate's counter and the non-finite counts."""
        return self.weighter.state_tensors() + self.gate.state_tensors() + [self.nonfinite_losses]

    def state_dict(self) -> dict[str, Any]:
        return {"format": 1, "terms": list(self.term_names), "members": self.members,
                "n_params": self.rows.n_params, "weighter": self.weighter.state_dict(),
                "gate_step": self.gate.step, "nonfinite_losses": self.nonfinite_losses.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, mine in (("terms", list(self.term_names)), ("members", self.members), ("n_params", self.rows.n_params)):
            if key not in state:
                raise ValueError(f"weighted-backward state is missing {key!r}")
            if state[key] != mine:
                raise ValueError(f"weighted-backward state has {key}={state[key]!r}, this one {mine!r}")
        w = self.weighter
        w.load_state_dict(state["weighter"])
        w.to(dtype=self.rows.dtype, device=self.rows.device)
        self.gate.set_step(int(state["gate_step"]))
        self.nonfinite_losses.copy_(state["nonfinite_losses"])

    def __repr__(self) -> str:
        return (f"WeightedBackward({self.weighter.scheme!r}, terms={self.term_names}, members={self.members}, "
                f"P={self.rows.n_params}, gate={type(self.gate).__name__})")
