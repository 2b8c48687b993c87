"""The weighted backward: per-term gradients into ``G[S, K, P]``, the loss weights, and ``.grad``.

The one piece every training loop uses, the :class:`~fastpinn.Trainer`'s included::

    wb = fastpinn.WeightedBackward(model, fastpinn.DN(beta=0.9), terms=["pde", "ic", "bc"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(n_steps):
        losses = [loss_pde(model), loss_ic(model), loss_bc(model)]   # K scalar tensors
        lam = wb(losses)          # lambda on its tau schedule, .grad set to the weighted gradient
        opt.step()

Like ``torch.amp.GradScaler`` it is a small stateful object beside the optimizer: it owns the gradient
matrix (its buffers and the backward passes filling them: :mod:`fastpinn.gradient_buffers`), the
:class:`~fastpinn.Weighter` and the update schedule (an :class:`UpdateGate`), and has
``state_dict()``/``load_state_dict()`` for checkpoints.

How a call works depends only on what the scheme reads (:attr:`Weighter.reads`):

* ``"stats"`` (MA, ID, DN, LRA, grad-norm, GradNorm), on an update step: ``G`` is zeroed; for each term
  the trainable tensors' ``.grad`` point at their slices of row ``k`` of ``G`` and that term's backward
  runs, so autograd accumulates straight into ``G`` (no per-term gradient copies; the graph is freed after
  the last term). Where terms share one evaluation of the fused jet op, its backward runs once for all of them
  after their passes (``batch_cotangents``, :mod:`fastpinn.ops.cotangents`): every tile's forward state is
  recomputed once instead of once per term, with each term's gradient unchanged to the bit. The ``K`` sweeps
  back through the network stay (one per term: exact per-term gradients need ``K`` vector-Jacobian
  products): in forwards' worth of arithmetic an update step of ``K`` shared terms costs ``2 + 2K`` (at least
  ``1 + 2K`` without the recompute) against a PINN step's 4 (bench/bench_dn_between_updates.py prints the
  count). The fused statistics of ``G`` and the EMA give new weights, then ``.grad`` of every trainable tensor
  is set to its slice of ``sum_j lam_j G_j`` (one batched matrix product into a fixed buffer). Between updates (host gate: ``tau - 1`` steps in ``tau``) nothing reads ``G``, and the weighted
  gradient is one backward of ``sum_j lam_j L_j``, as for a fixed scheme: a PINN-cost step, where ``K``
  backwards cost up to ``K`` times more when the terms share their points (one forward). The result equals
  ``sum_j lam_j G_j`` to rounding (the same numbers summed in another order; see
  ``tests/test_one_backward.py``). ``G`` then keeps the last update step's rows.
  The device gate (CUDA graphs) decides on the device, so its captured step has one static shape: ``K``
  backwards and the statistics every step, the EMA masked off between updates -- ``K`` backwards where the
  host gate makes one, i.e. up to ``K`` times the backward work on ``tau - 1`` steps in ``tau`` when the
  terms share their points (about nothing extra when they do not: each term's backward then walks only its
  own points' graph). That is the price of replaying one captured graph.
  The aggregators (PCGrad, MGDA, ..., :mod:`fastpinn.schemes.aggregators`) read ``"stats"`` with the Gram
  matrix ``G Gᵀ`` (one fused pass) in place of the statistics; the weights are the solver's and ``.grad`` is
  the direction ``sum_j w_j G_j``; their ``tau`` counts calls (default 1: every call).
* ``"losses"`` (SoftAdapt, ReLoBRaLo, uncertainty weighting): on an update step the weights come from
  the term losses themselves, then one backward of ``sum_j lam_j L_j`` -- a PINN-cost step, no ``G``.
* ``"momentum"`` (M-ConFIG): the backward of one term per call (all ``K`` with the device gate, which uses
  one row), folded into that term's momentum; ``.grad`` combines the momenta.
* ``"traces"`` (NTK): on an update step from the per-term NTK traces the caller provides (``traces=``),
  then one backward of the weighted sum.
* ``"fixed"`` (PINN): one backward of the weighted sum.

Data-parallel training (``process_group=`` or ``reducer=``): each rank passes its terms' *local* losses and
``shard_weights[k] = n_rk / N_k``; row ``k`` of the local ``G`` is scaled by that share and a
:class:`~fastpinn.reducers.GradientReducer` sums it over the ranks, which gives the gradient of the *global*
mean on every rank (:mod:`fastpinn.reducers` has the details and the overlapped variant). On an update step
(``"stats"`` schemes) that is ``G`` with the losses packed behind it, so the statistics and ``lambda`` come
from the reduced ``G`` and are bit-identical on every rank; on any other step the weighted gradient is linear
in ``G``, so only the combined ``[S, P]`` gradient of the one backward (losses packed behind it) is
reduced: ``K`` times less data. Without a process group nothing is reduced and nothing is scaled: the single
process is the one-rank case.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .gradient_buffers import GradientBuffers
from .params import ParameterRows, trainable_tensors
from .reducers import GradientReducer, check_overlap_members, make_reducer
from .schedule import DeviceGate, HostGate, UpdateGate, make_gate
from .aggregation.gram import term_gram
from .schemes import Scheme
from .validation import check_flag, check_int
from .weighter import Weighter

# The gates live in fastpinn.schedule; importable from here as before.
__all__ = ["WeightedBackward", "UpdateGate", "HostGate", "DeviceGate"]

LossesLike = Union[Tensor, Sequence[Tensor]]


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
            (one forward per term), which then need not be retained -- and must not be for
            ``torch.compile``d losses, whose compiled backward frees its buffers. The Trainer sets it from
            its term losses (:attr:`fastpinn.term_losses.TermLosses.shared`: terms sharing one evaluation).
        process_group: a ``torch.distributed`` process group (or ``torch.distributed.group.WORLD``) to
            reduce the term gradients and losses over (data parallelism over points); ``None``
            (default): one process, nothing reduced. Each call then takes ``shard_weights``. Shorthand for
            ``reducer=fastpinn.reducers.AllReduceReducer(process_group, overlap=..., bucket_elements=...)``.
        overlap: ``False`` (default): each step's gradient reduction is one blocking all-reduce after the
            backward passes; ``True``: pieces start as they become final, overlapped with the backward
            passes (same results, more collectives; needs ``members=1``). See
            :class:`~fastpinn.reducers.AllReduceReducer`. No effect without a process group.
        bucket_elements: with ``overlap``, the least elements of one collective (default ``2**16``).
        reducer: a :class:`~fastpinn.reducers.GradientReducer` instead of the three arguments above
            (default: built from them; a :class:`~fastpinn.reducers.LocalReducer` without a process group).
        batch_cotangents: ``True`` (default): when the terms share a graph (``shared_graph``), the per-term
            backwards hand the fused network op's cotangents to one batched backward per evaluation
            (:mod:`fastpinn.ops.cotangents`: each tile's forward state and the activation derivatives formed
            once for all terms, one sweep per term), each term's gradient equal to its own pass's bit for bit;
            ``False``: every pass runs the op's backward itself (the reference; e.g. for benchmarks). Not used
            with the overlapped reduction (``overlap=True``), which sends each row as its pass finishes.

    Attributes:
        G: ``[S, K, P]`` the per-term gradients of the last update step (host gate) or call (device gate);
            ``None`` for a fixed-weight scheme.
        losses: ``[S, K]`` the last call's detached term losses (a fixed buffer).
        weighted_loss: ``[S]`` the last call's ``sum_j lam_j L_j`` (detached, computed when read; e.g. for an
            L-BFGS closure).
        weighter: the :class:`~fastpinn.Weighter` holding the weights.
        gate: the :class:`UpdateGate`.
        backward_passes: autograd backward calls made so far (``K`` per update step of a ``"stats"`` scheme,
            every step with the device gate; 1 per other step). A batched update step counts ``K`` as well: each
            term's pass still walks its own loss graph; only the fused network backward is shared.
        batched_backwards: batched fused-op backwards run so far (one per evaluation that several terms of an
            update step read; ``backward_passes`` is unchanged by batching).
        reducer: the :class:`~fastpinn.reducers.GradientReducer`.
        collectives, reduced_elements: all-reduces made so far and the elements they summed (the reducer's).
        overlap: whether the collectives overlap the backward passes (the reducer's).
        G_packed, grad_packed: the flat buffers a data-parallel step reduces: ``G`` (``None`` for a fixed
            scheme until :meth:`term_gradients`) and the weighted gradient, each with the ``[S, K]`` losses'
            slot behind it.
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
        reducer: Optional[GradientReducer] = None,
        batch_cotangents: bool = True,
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
        self.steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, minimum=1)
        check_int("first_update", first_update, minimum=0, hint=" (an epoch)")
        self.weighter = Weighter(scheme, n_terms=len(names), reference=reference, adaptive=adaptive, backend=backend,
                                 first_update=first_update)
        S, K, P = members, len(names), self.rows.n_params
        dtype, device = self.rows.dtype, self.rows.device
        self.members = S
        self.weighter.reset(S, dtype, device, n_params=P)
        # the weighter's schedule (in epochs) counted in calls: one place for when the weights update
        # (an aggregator decides every call, mini-batches included)
        calls = 1 if getattr(scheme, "every_call", False) else steps_per_epoch
        self.gate = make_gate(gate, self.weighter.schedule.in_steps(calls), device)
        self.reads = self.weighter.reads
        if reducer is None:
            reducer = make_reducer(process_group, overlap, bucket_elements)
            check_overlap_members(overlap, S)  # also without a process group, as the argument says
        elif process_group is not None or overlap or bucket_elements != 1 << 16:
            raise ValueError("pass either reducer= or process_group=/overlap=/bucket_elements=, not both")
        elif not isinstance(reducer, GradientReducer):
            raise ValueError(f"reducer must be a fastpinn.reducers.GradientReducer, got {type(reducer).__name__}")
        reducer.attach(self.leaves, self.rows.offsets, P, S)
        self.reducer = reducer
        # G and the weighted gradient each live in one flat buffer with a [S, K] loss slot behind them, so
        # a data-parallel step reduces gradient and losses in a single collective (fastpinn.gradient_buffers).
        blocks = [] if flat is None else ([flat] if isinstance(flat, Tensor) else list(flat))
        self.flat = blocks
        self.buffers = GradientBuffers(self.leaves, self.rows, S, K, blocks, reducer,
                                       term_gradients=self.weighter.needs_term_gradients)
        self.losses = torch.zeros(S, K, dtype=dtype, device=device)
        #: ``[S, K]`` int64: calls in which a term's loss was NaN/Inf (counted on the device, never synced).
        self.nonfinite_losses = torch.zeros(S, K, dtype=torch.int64, device=device)
        self.shared_graph = check_flag("shared_graph", shared_graph)
        self.batch_cotangents = check_flag("batch_cotangents", batch_cotangents)

    @property
    def collectives(self) -> int:
        """All-reduces made so far (0 without a process group)."""
        return self.reducer.collectives

    @property
    def reduced_elements(self) -> int:
        """Elements the all-reduces summed so far."""
        return self.reducer.reduced_elements

    @property
    def process_group(self) -> Any:
        """The process group the gradients are reduced over (``None``: one process)."""
        return getattr(self.reducer, "process_group", None)

    @property
    def overlap(self) -> bool:
        """Whether the collectives overlap the backward passes."""
        return self.reducer.overlap

    @property
    def G(self) -> Optional[Tensor]:
        """``[S, K, P]`` the per-term gradients (``None`` for a fixed scheme before :meth:`term_gradients`)."""
        return self.buffers.G

    @property
    def G_packed(self) -> Optional[Tensor]:
        """``G`` with the ``[S, K]`` losses' slot behind it, one flat buffer."""
        return self.buffers.G_packed

    @property
    def grad_packed(self) -> Tensor:
        """The weighted gradient with the ``[S, K]`` losses' slot behind it, one flat buffer."""
        return self.buffers.grad_packed

    @property
    def grad(self) -> Tensor:
        """``[S, P]`` the last weighted gradient ``sum_j lam_j G_j`` (a copy when there are several blocks)."""
        return self.buffers.grad

    @property
    def backward_passes(self) -> int:
        """Autograd backward calls made so far."""
        return self.buffers.backward_passes

    @property
    def batched_backwards(self) -> int:
        """Batched fused-op backwards run so far."""
        return self.buffers.batched_backwards

    def _term_backwards(self, items: Sequence[Tensor], accumulate: bool, reduce_rows: Optional[Tensor] = None,
                        only: Optional[int] = None) -> None:
        """One backward per term into row ``k`` of ``G`` (:meth:`GradientBuffers.term_backwards
        <fastpinn.gradient_buffers.GradientBuffers.term_backwards>`)."""
        self.buffers.term_backwards(items, accumulate, self.losses, shared_graph=self.shared_graph,
                                    batch_cotangents=self.batch_cotangents, reduce_rows=reduce_rows, only=only)

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
        reducer = self.reducer
        share = reducer.shares(shard_weights, self.term_names, self.losses)
        if share is not None and accumulate:
            raise ValueError("accumulate=True cannot be combined with a process_group: the gradients already in "
                             ".grad would be summed over the ranks")
        S = self.members
        # [S, K], differentiable: the fixed-weight backward's weighted sum reads it too (an [S] loss as it is:
        # a reshape would add a view node to walk)
        stacked = torch.stack([loss if loss.shape == (S,) else loss.reshape(S) for loss in items], dim=-1)
        self.losses.copy_(stacked.detach())
        if share is not None:
            self.losses.mul_(share)  # this rank's part of the global mean; summed over the ranks below
        # active: None = update now (host gate said yes), a device flag, or no update at all (host said no)
        run = isinstance(decision, Tensor) or decision
        active = decision if isinstance(decision, Tensor) else None
        overlap = share is not None and reducer.overlap
        if w.needs_term_gradients and run:  # per-term gradients only where the statistics read them
            # M-ConFIG: the term of this update (the updates so far, mod K); the host gate runs its backward alone
            term = self._momentum_term(active, len(items)) if self.reads == "momentum" else None
            only = term if isinstance(term, int) else None
            if overlap:  # G's rows reduced as their backwards finish, the losses with the last one
                self._term_backwards(items, accumulate, reduce_rows=share, only=only)
                reducer.wait(self.G_packed, self.losses)
            else:
                self._term_backwards(items, accumulate, only=only)
                if share is not None:  # one collective: G[S, K, P] with the losses packed behind it
                    self.G.mul_(share.unsqueeze(-1))
                    reducer.all_reduce(self.G_packed, self.losses)
            rows = self.G
            if self.reads == "momentum":
                rows = w.update_from_momentum(self.G, term, active=active)
                if isinstance(active, Tensor) and w.scheme.tau > 1:  # device gate between updates: as the host's
                    rows = torch.where(active, rows, self.G)         # one backward of sum_k w_k L_k
            elif w.aggregates:  # the direction's weights from the (reduced) G: alike on every rank
                w.update_from_gram(term_gram(self.G, w.backend), active=active)
            else:
                w.update_from_stats(w.statistics(self.G), self.rows.n_params, active=active, losses=self.losses)
            self.buffers.combine(w.lam_applied, accumulate, rows)
            return self._finish(update)
        # every other step: one backward of sum_j lam_j L_j (a stats scheme between its updates included:
        # the weighted gradient is linear in G, so it needs no per-term rows)
        if share is not None and run and self.reads == "losses":  # the update reads the global losses
            reducer.all_reduce(self.losses)
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
            self.buffers.fixed_backward(w.lam_applied, stacked, accumulate, self.losses, share,
                                        with_losses=with_losses)
            reducer.wait(self.grad_packed, self.losses, with_losses=with_losses)
        else:
            self.buffers.fixed_backward(w.lam_applied, stacked, accumulate, self.losses, share)
            if share is not None:
                reducer.all_reduce(self.grad_packed, self.losses, with_losses=with_losses)
        return self._finish(update)

    def _momentum_term(self, active: Optional[Tensor], K: int) -> Union[int, Tensor]:
        """M-ConFIG's term of this update: the member's update count mod ``K`` (a device tensor with the device
        gate; with the host gate the same number from the host's schedule, so only its backward runs)."""
        if isinstance(active, Tensor):
            return self.weighter.n_updates[0] % K
        sched = self.gate.schedule
        return ((self.gate.step - sched.first_step) // sched.period) % K

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
            self.buffers.allocate_G()
        self._term_backwards(items, accumulate=False)
        return self.G

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
