"""Turn per-term gradients into loss weights: the part of fastpinn usable in anyone's own loop.

    w = fastpinn.Weighter(fastpinn.DN(beta=0.99, p=2.0, bias_correction=True), n_terms=3, reference=0)
    lam = w.update(G)                  # G[K, P] or G[S, K, P] -> weights to apply now, [K] or [S, K]
    theta.grad = w.combine(G, lam)     # sum_j lam_j G_j -> [P] or [S, P]

All state (weights, the update counts, skip counters) lives in tensors on ``G``'s device and is updated
in place by the compiled ops, so an update never synchronises with the host.

What a training step calls depends only on :attr:`Weighter.reads` (never on the scheme itself):

* ``"fixed"`` (PINN): one backward of ``sum_j lam_applied[:, j] L_j``; no update.
* ``"stats"`` (MA, ID, DN, LRA, GradNormW; :attr:`needs_term_gradients` is True): per-term gradients
  ``G[S, K, P]``; at update steps ``update_from_stats(statistics(G), P, active=...)`` (or ``update(G)``);
  then ``theta.grad = combine(G, lam_applied)``.
  GradNorm (``stats`` too, trainable weights) also needs this step's losses:
  ``update_from_stats(statistics(G), P, active=..., losses=losses.detach())``; its statistics cover only
  ``scheme.columns`` of G.
* ``"losses"`` (SoftAdapt, ReLoBRaLo, Uncertainty; :attr:`needs_term_gradients` is False): at update steps
  ``update_from_losses(losses.detach(), active=...)`` with ``losses[S, K]`` of this step, then one backward of
  ``(losses * lam_applied).sum()`` -- a PINN-cost step.
  The aggregators (PCGrad, MGDA, ..., :mod:`fastpinn.schemes.aggregators`; :attr:`aggregates` is True) read
  ``"stats"`` too, with the Gram matrix in place of the statistics:
  ``update_from_gram(fastpinn.ops.grad_gram(G), active=...)`` gives the weights of the direction, then
  ``theta.grad = combine(G, lam_applied)``.
* ``"momentum"`` (M-ConFIG; :attr:`needs_term_gradients` is True): ``rows = update_from_momentum(G, term,
  active=...)`` folds row ``term`` of ``G`` (the only one computed) into its momentum, then
  ``theta.grad = combine(rows, lam_applied)``.
* ``"traces"`` (NTK; :attr:`needs_term_gradients` is False): at update steps
  ``update_from_traces(fastpinn.ntk.term_traces(problem.terms, net, coords, subsample=scheme.subsample,
  per_point=scheme.per_point, generator=g), active=...)``, then one backward of the weighted sum.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor

from . import ops
from .schedule import UpdateSchedule
from .aggregation.gram import term_gram
from .schemes import PINN, SCHEME_NAMES, EMAScheme as DynamicScheme, Scheme, StatefulScheme as LossScheme
from .schemes.aggregators import is_aggregator
from .validation import check_int

__all__ = ["Weighter", "UPDATE_SCHEDULES", "first_update_for"]

#: ``"fastpinn"``: update at epochs 0, tau, 2 tau, ...; ``"authors"``: as the authors' TensorFlow scripts do --
#: at 1-based epochs tau, 2 tau, ... (0-based tau - 1, 2 tau - 1, ...) without bias correction, and at
#: 0, tau, 2 tau, ... in their bias-corrected script.
UPDATE_SCHEDULES = ("fastpinn", "authors")


def first_update_for(schedule: str, scheme: Scheme) -> int:
    """The :class:`Weighter`'s ``first_update`` of an update schedule (see :data:`UPDATE_SCHEDULES`)."""
    if schedule not in UPDATE_SCHEDULES:
        raise ValueError(f"update_schedule must be one of {UPDATE_SCHEDULES}, got {schedule!r}")
    if schedule == "fastpinn" or not scheme.dynamic or scheme.bias_correction:
        return 0
    return scheme.tau - 1


class Weighter:
    """Loss weights of one scheme for ``n_terms`` loss terms (optionally for ``S`` ensemble members).

    Args:
        scheme: any scheme of :mod:`fastpinn.schemes` (``PINN``, ``MA``, ``ID``, ``DN``, ``LRA``,
            ``GradNormW``, ``GradNorm``, ``NTK``, ``SoftAdapt``, ``ReLoBRaLo``, ``Uncertainty``).
        n_terms: number of loss terms ``K >= 1``.
        reference: index of the reference term (weight fixed at 1; the PDE residual by default, 0).
            Schemes with ``uses_reference = False`` (all but MA, ID, DN, LRA) ignore it.
        adaptive: which terms get dynamic weights (``[K]`` bools); default all but the reference (all
            terms for schemes without a reference). Non-adaptive terms keep weight 1.
        backend: op backend (``"auto"``, ``"cpp"``, ``"triton"`` for the statistics, ``"torch"``).
        first_update: the first epoch that updates; then every ``tau`` epochs after it (``e >= first_update``
            and ``(e - first_update) % tau == 0``). ``0`` (default) updates at 0, tau, 2 tau, ...; the
            authors' non-bias-corrected scripts update at 1-based epochs tau, 2 tau, ..., i.e.
            ``first_update = tau - 1`` (see :func:`first_update_for`).

    State is created on the first :meth:`update` (or :meth:`reset`) from ``G``'s shape, dtype and device.
    """

    def __init__(
        self,
        scheme: Scheme,
        n_terms: int,
        reference: int = 0,
        adaptive: Optional[Sequence[bool]] = None,
        *,
        backend: ops.Backend = "auto",
        first_update: int = 0,
    ) -> None:
        if not isinstance(scheme, (PINN, DynamicScheme, LossScheme)):
            raise ValueError(f"scheme must be a fastpinn scheme ({', '.join(SCHEME_NAMES)}), got {scheme!r}")
        if isinstance(n_terms, bool) or not isinstance(n_terms, int) or n_terms < 1:
            raise ValueError(f"n_terms must be an integer >= 1, got {n_terms!r}")
        if isinstance(reference, bool) or not isinstance(reference, int) or not 0 <= reference < n_terms:
            raise ValueError(f"reference must be an integer in [0, {n_terms}), got {reference!r}")
        free = not getattr(scheme, "uses_reference", True)  # no reference term: every term may adapt
        if adaptive is None:
            mask = [free or k != reference for k in range(n_terms)]
        else:
            mask = [bool(a) for a in adaptive]
            if len(mask) != n_terms:
                raise ValueError(f"adaptive must have n_terms={n_terms} entries, got {len(mask)}")
            if mask[reference] and not free:
                raise ValueError(f"adaptive[{reference}] must be False: the reference term's weight is fixed at 1")
        if isinstance(scheme, PINN) and scheme.weights is not None and len(scheme.weights) != n_terms:
            raise ValueError(f"PINN weights must have n_terms={n_terms} entries, got {len(scheme.weights)}")
        if backend not in ops.BACKENDS:
            raise ValueError(f"backend must be one of {ops.BACKENDS}, got {backend!r}")
        self.first_update = check_int("first_update", first_update, minimum=0)
        self.scheme = scheme
        self.n_terms = n_terms
        self.reference = reference
        self.adaptive_mask = tuple(mask)
        self.backend = backend
        self.lam: Optional[Tensor] = None  # [S, K] EMA state
        self.lam_applied: Optional[Tensor] = None  # [S, K] weights applied now (bias-corrected)
        self.n_updates: Optional[Tensor] = None  # [S] int64: update calls
        self.skipped: Optional[Tensor] = None  # [S, K] int64: updates a term kept its weight
        self._adaptive: Optional[Tensor] = None  # [K] bool on the state's device: the EMA's target terms
        self.scheme_state: dict[str, Tensor] = {}  # a loss-based scheme's own tensors (previous losses, ...)
        self._members: Optional[int] = None

    # ----------------------------------------------------------------------------------------- state
    @property
    def dynamic(self) -> bool:
        return bool(self.scheme.dynamic)

    @property
    def reads(self) -> str:
        """What a step must give this Weighter: ``"fixed"`` (nothing), ``"stats"`` (per-term gradients),
        ``"losses"`` (the term losses) or ``"traces"`` (per-term NTK traces)."""
        return getattr(self.scheme, "reads", "stats") if self.dynamic else "fixed"

    @property
    def needs_term_gradients(self) -> bool:
        """Whether a step needs the per-term gradients ``G[S, K, P]`` (else one backward of the weighted sum)."""
        return self.reads in ("stats", "momentum")

    @property
    def aggregates(self) -> bool:
        """Whether the scheme is an aggregator: its weights come from the Gram matrix of ``G`` (or of M-ConFIG's
        momenta) and make the update direction."""
        return is_aggregator(self.scheme)

    def reset(self, members: int = 1, dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None, n_params: Optional[int] = None) -> None:
        """(Re)create the state for ``members`` ensemble members: weights 1 (0 for adaptive terms
        with bias correction, whose applied weight is still 1 until the first update)."""
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        k = self.n_terms
        adaptive = self._target_mask(device)
        if isinstance(self.scheme, PINN):
            base = torch.tensor(self.scheme.weights or [1.0] * k, dtype=dtype, device=device)
            lam = base.expand(members, k).clone()
        elif isinstance(self.scheme, LossScheme):
            init = self.scheme.initial_weights(members, k, dtype, device)
            lam = torch.where(adaptive.unsqueeze(0), init, torch.ones_like(init))
        else:
            lam = torch.ones(members, k, dtype=dtype, device=device)
            if self.scheme.bias_correction:
                lam[:, adaptive] = 0.0
        self.lam = lam
        # EMA schemes apply 1 until their first update (lam may start at 0 for bias correction).
        ema = self.dynamic and not isinstance(self.scheme, LossScheme)
        self.lam_applied = torch.ones_like(lam) if ema else lam.clone()
        self.n_updates = torch.zeros(members, dtype=torch.int64, device=device)
        self.skipped = torch.zeros(members, k, dtype=torch.int64, device=device)
        self._adaptive = adaptive
        self._members = members
        if self.aggregates:  # (M-ConFIG's momenta are [S, K, P])
            self.scheme_state = self.scheme.init_state(members, k, dtype, device, n_params=n_params)
        else:
            self.scheme_state = (self.scheme.init_state(members, k, dtype, device)
                                 if isinstance(self.scheme, LossScheme) else {})

    def _target_mask(self, device: torch.device | str | None) -> Tensor:
        """``[K]`` bool: the terms the EMA updates (adaptive, and not the reference when the scheme has one)."""
        return torch.tensor(self.adaptive_mask, dtype=torch.bool, device=device)

    def state_tensors(self) -> list[Tensor]:
        """Every state tensor updated in place (for snapshots around CUDA-graph capture); empty before reset."""
        if self.lam is None:
            return []
        return [self.lam, self.lam_applied, self.n_updates, self.skipped, *self.scheme_state.values()]

    @property
    def term_updates(self) -> Tensor:
        """``[S, K]`` valid updates of each target term (``n_updates - skipped``: every update call either
        updates or skips each target term). Bias correction uses this per-term count."""
        if self.lam is None:
            raise RuntimeError("the Weighter has no state yet")
        return self.n_updates.unsqueeze(1) - self.skipped

    def _ensure_state(self, G3: Tensor) -> None:
        s = G3.shape[0]
        if self.lam is None:
            self.reset(s, G3.dtype, G3.device, n_params=G3.shape[-1])
        elif self._members != s:
            raise ValueError(f"G has {s} ensemble members but this Weighter holds state for {self._members}")
        elif self.lam.dtype != G3.dtype or self.lam.device != G3.device:
            self.to(dtype=G3.dtype, device=G3.device)

    def to(self, dtype: Optional[torch.dtype] = None, device: torch.device | str | None = None) -> "Weighter":
        """Move the state (weights keep their values; counters stay int64)."""
        if self.lam is not None:
            self.lam = self.lam.to(dtype=dtype or self.lam.dtype, device=device)
            self.lam_applied = self.lam_applied.to(dtype=dtype or self.lam_applied.dtype, device=device)
            self.n_updates = self.n_updates.to(device=device)
            self.skipped = self.skipped.to(device=device)
            self._adaptive = self._adaptive.to(device=device)
            self.scheme_state = {k: v.to(device=device, dtype=(dtype or v.dtype) if v.is_floating_point() else None)
                                 for k, v in self.scheme_state.items()}
        return self

    # -------------------------------------------------------------------------------------- updating
    def _check_G(self, G: Tensor) -> Tensor:
        if not isinstance(G, Tensor):
            raise ValueError(f"G must be a torch.Tensor of shape [K, P] or [S, K, P], got {type(G).__name__}")
        if G.dim() not in (2, 3) or G.shape[-2] != self.n_terms or G.shape[-1] < 1:
            raise ValueError(
                f"G must have shape [K={self.n_terms}, P] or [S, K={self.n_terms}, P] with P >= 1, got {tuple(G.shape)}"
            )
        if G.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"G must be float32 or float64, got {G.dtype}")
        return G if G.dim() == 3 else G.unsqueeze(0)

    def update(self, G: Tensor, losses: Optional[Tensor] = None) -> Tensor:
        """One weight update from the per-term gradients; returns the weights to apply now.

        Args:
            G: ``[K, P]`` or ``[S, K, P]``; row ``k`` is the gradient of the (unweighted) term ``k``
                with respect to all network parameters.

        Returns:
            A copy of the applied weights: ``[K]`` for ``G[K, P]``, ``[S, K]`` for ``G[S, K, P]``.
            For ``PINN`` these are the fixed weights.
        """
        if self.reads == "losses":
            raise ValueError(f"scheme {self.scheme.name!r} reads term losses, not gradients: call "
                             "update_from_losses(losses)")
        G3 = self._check_G(G)
        self._ensure_state(G3)
        if self.aggregates and self.reads == "stats":
            self.update_from_gram(term_gram(G3, self.backend))
        elif self.reads == "momentum":
            self.update_from_momentum(G3, self.n_updates[0] % self.n_terms)
        elif self.dynamic:
            self.update_from_stats(self.statistics(G3), G3.shape[-1], losses=losses)
        out = self.lam_applied.clone()
        return out if G.dim() == 3 else out.squeeze(0)

    def statistics(self, G: Tensor) -> Tensor:
        """Fused gradient statistics ``[S, K, N_STATS]`` (or ``[K, N_STATS]``) the scheme reads."""
        cols = getattr(self.scheme, "columns", None)  # GradNorm: a parameter subset W of theta
        if cols is not None:
            if G.shape[-1] < cols[1]:
                raise ValueError(f"G has {G.shape[-1]} columns but the scheme reads columns {cols}")
            G = G[..., cols[0]:cols[1]]
        return ops.grad_stats(G, getattr(self.scheme, "p", 2.0) if self.dynamic else 2.0, backend=self.backend)

    def update_from_stats(self, stats: Tensor, numel: int, active: Optional[Tensor] = None, *,
                          losses: Optional[Tensor] = None) -> None:
        """In-place EMA update from precomputed statistics ``[S, K, N_STATS]`` of rows of length ``numel``.

        ``active``: optional 0-dim bool tensor; when it is False on the device the state is left exactly as
        it was. The decision then never reaches the host, so the same kernels can run every step (e.g. in
        a captured CUDA graph) with the update switched on and off by a device-side counter.
        ``losses``: ``[S, K]`` term losses, required by (only) GradNorm.
        """
        if not self.dynamic:
            return
        if self.reads != "stats":
            raise ValueError(f"scheme {self.scheme.name!r} reads {self.reads!r}, not gradient statistics: "
                             "call update_from_losses")
        if self.aggregates:
            raise ValueError(f"scheme {self.scheme.name!r} is an aggregator: its weights come from the Gram matrix, "
                             "call update_from_gram(fastpinn.ops.grad_gram(G))")
        if self.lam is None:
            self.reset(stats.shape[0], stats.dtype, stats.device)
        if isinstance(self.scheme, LossScheme):  # GradNorm: trainable weights from statistics and losses
            if losses is None:
                raise ValueError(f"scheme {self.scheme.name!r} needs the term losses: pass losses=[S, K]")
            L2 = self._check_losses(losses)
            on = torch.ones((), dtype=torch.bool, device=L2.device) if active is None else active.to(torch.bool)
            self._apply(*self.scheme.propose_from_stats(stats.to(self.lam.dtype), L2, self.lam, self.scheme_state,
                                                        self._adaptive, self.n_updates), on)
            return
        hat, valid = self.scheme.candidate(stats, self.lam_applied, self.reference, numel)
        sch = self.scheme
        # The gate is inside the op (read on the device): no clone/restore, no host sync.
        ops.ema_update(hat, valid, self._adaptive, self.lam, self.lam_applied, self.n_updates, self.skipped,
                       sch.beta, sch.bias_correction, active, backend=self._update_backend())
        self._clamp()

    def update_from_gram(self, gram: Tensor, active: Optional[Tensor] = None) -> None:
        """An aggregator's weights of this step from the Gram matrices ``gram[S, K, K]`` (float64) of the
        per-term gradients: ``lam_applied`` becomes the solver's ``w`` (direction ``sum_k w_k G_k``); a member
        whose weights come out non-finite keeps its previous ones (counted in ``skipped``). ``active`` as for
        :meth:`update_from_stats`. No host sync."""
        if not (self.aggregates and self.reads == "stats"):
            raise ValueError(f"scheme {getattr(self.scheme, 'name', self.scheme)!r} reads {self.reads!r}, "
                             "not the Gram matrix of the term gradients")
        if gram.dim() != 3 or tuple(gram.shape[1:]) != (self.n_terms, self.n_terms):
            raise ValueError(f"gram must have shape [S, K={self.n_terms}, K={self.n_terms}], got {tuple(gram.shape)}")
        if self.lam is None:
            self.reset(gram.shape[0], torch.float64, gram.device)
        w = self.scheme.aggregate(gram.to(torch.float64), self.n_updates)
        self._apply_aggregate(w, active)

    def update_from_momentum(self, G: Tensor, term: Union[int, Tensor], active: Optional[Tensor] = None) -> Tensor:
        """M-ConFIG: fold row ``term`` of ``G[S, K, P]`` (and, on the first update, every row) into the
        per-term momenta and set the weights of the momenta; returns the momenta ``[S, K, P]``, whose
        combination with :meth:`weights` is the direction. ``term``: an int or a 0-dim int64 device tensor."""
        if self.reads != "momentum":
            raise ValueError(f"scheme {getattr(self.scheme, 'name', self.scheme)!r} reads {self.reads!r}, "
                             "not the per-term momenta")
        G3 = self._check_G(G)
        self._ensure_state(G3)
        if self.scheme_state["momentum"].shape[-1] != G3.shape[-1]:
            raise ValueError(f"G has {G3.shape[-1]} columns, the momenta {self.scheme_state['momentum'].shape[-1]}")
        on = torch.ones((), dtype=torch.bool, device=G3.device) if active is None else active.to(torch.bool)
        w = self.scheme.momentum_step(G3, term, self.scheme_state, lambda m: term_gram(m, self.backend), on)
        self._apply_aggregate(w, on)
        return self.scheme_state["momentum"]

    def _apply_aggregate(self, w: Tensor, active: Optional[Tensor]) -> None:
        on = torch.ones((), dtype=torch.bool, device=w.device) if active is None else active.to(torch.bool)
        self._apply(w.to(self.lam.dtype), torch.isfinite(w).all(dim=1), {}, on)

    def update_from_traces(self, traces: Tensor, active: Optional[Tensor] = None) -> None:
        """In-place EMA update of an NTK scheme's weights from per-term NTK traces ``[S, K]`` or ``[K]``
        (:func:`fastpinn.ntk.term_traces`); ``active`` as for :meth:`update_from_stats`."""
        if self.reads != "traces":
            raise ValueError(f"scheme {getattr(self.scheme, 'name', self.scheme)!r} reads {self.reads!r}, "
                             "not NTK traces")
        if not isinstance(traces, Tensor) or traces.dim() not in (1, 2) or traces.shape[-1] != self.n_terms:
            raise ValueError(f"traces must be a tensor of shape [K={self.n_terms}] or [S, K={self.n_terms}], "
                             f"got {getattr(traces, 'shape', type(traces).__name__)}")
        if traces.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"traces must be float32 or float64, got {traces.dtype}")
        T2 = traces.detach().reshape(-1, self.n_terms)
        if self.lam is None:
            self.reset(T2.shape[0], T2.dtype, T2.device)
        elif self._members != T2.shape[0]:
            raise ValueError(f"traces have {T2.shape[0]} ensemble members but this Weighter holds state for "
                             f"{self._members}")
        hat, valid = self.scheme.candidate_from_traces(T2.to(self.lam.dtype))
        sch = self.scheme
        ops.ema_update(hat, valid, self._adaptive, self.lam, self.lam_applied, self.n_updates, self.skipped,
                       sch.beta, sch.bias_correction, active, backend=self._update_backend())
        self._clamp()

    def _clamp(self) -> None:
        """The remedy ``weight_min``/``weight_max`` of an EMA scheme: clamp the EMA state and the applied
        weights in place (no host sync). The bounds enclose 1, the weight of the reference and non-adaptive
        terms and of every term before its first update, so a gated-off update stays a no-op; without
        bounds nothing runs (the paper's method, bit for bit)."""
        lo, hi = getattr(self.scheme, "weight_min", None), getattr(self.scheme, "weight_max", None)
        if lo is None and hi is None:
            return
        self.lam.clamp_(min=lo, max=hi)
        self.lam_applied.clamp_(min=lo, max=hi)

    def update_from_losses(self, losses: Tensor, active: Optional[Tensor] = None) -> Tensor:
        """In-place update of a loss-based scheme's weights from this step's term losses.

        Args:
            losses: ``[K]`` or ``[S, K]`` term losses (detached; float32/float64).
            active: optional 0-dim bool tensor; False leaves the state exactly as it was (no host sync).

        Returns:
            The applied weights, ``[K]`` or ``[S, K]`` (a view of the state: read, don't modify).

        A member whose adaptive losses are not all finite and > 0 keeps its weights and scheme state; its
        adaptive terms are counted in ``skipped``.
        """
        if self.reads != "losses":
            raise ValueError(f"scheme {getattr(self.scheme, 'name', self.scheme)!r} reads {self.reads!r}, "
                             "not term losses")
        L2 = self._check_losses(losses)
        on = torch.ones((), dtype=torch.bool, device=L2.device) if active is None else active.to(torch.bool)
        self._apply(*self.scheme.propose(L2, self.lam, self.scheme_state, self._adaptive, self.n_updates), on)
        return self.lam_applied if losses.dim() == 2 else self.lam_applied[0]

    def _check_losses(self, losses: Tensor) -> Tensor:
        """Validate ``losses[K]`` / ``[S, K]``, create the state if needed; return them detached as ``[S, K]``."""
        if not isinstance(losses, Tensor) or losses.dim() not in (1, 2) or losses.shape[-1] != self.n_terms:
            raise ValueError(f"losses must be a tensor of shape [K={self.n_terms}] or [S, K={self.n_terms}], "
                             f"got {getattr(losses, 'shape', type(losses).__name__)}")
        if losses.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"losses must be float32 or float64, got {losses.dtype}")
        L2 = losses.detach().reshape(-1, self.n_terms)
        if self.lam is None:
            self.reset(L2.shape[0], L2.dtype, L2.device)
        elif self._members != L2.shape[0]:
            raise ValueError(f"losses have {L2.shape[0]} ensemble members but this Weighter holds state for "
                             f"{self._members}")
        return L2.to(self.lam.dtype)

    def _apply(self, new_lam: Tensor, valid: Tensor, new_state: dict[str, Tensor], on: Tensor) -> None:
        """Commit a trainable/loss-based scheme's proposal where ``valid[S] & on``; count skips. No host sync."""
        ok = valid & on  # [S]
        self.lam.copy_(torch.where(ok.unsqueeze(1), new_lam, self.lam))
        self.lam_applied.copy_(self.lam)
        for key, value in new_state.items():
            old = self.scheme_state[key]
            old.copy_(torch.where(ok.view(-1, *([1] * (old.dim() - 1))), value, old))
        self.skipped.add_((on & ~valid).unsqueeze(1).logical_and(self._adaptive.unsqueeze(0)).to(torch.int64))
        self.n_updates.add_(on.to(torch.int64))

    def _update_backend(self) -> str:
        return "cpp" if self.backend == "triton" else self.backend

    def weights(self) -> Tensor:
        """The weights applied now, ``[S, K]`` (state must exist)."""
        if self.lam_applied is None:
            raise RuntimeError("the Weighter has no state yet: call update(G) or reset(...) first")
        return self.lam_applied

    @property
    def schedule(self) -> UpdateSchedule:
        """The epochs at which the weights update: ``first_update``, ``first_update + tau``, ... shifted by the
        scheme's ``weight_warmup`` (a scheme
        without ``tau``: every epoch from ``first_update``); a :class:`~fastpinn.WeightedBackward`'s gate counts
        the same schedule in steps."""
        return UpdateSchedule(getattr(self.scheme, "tau", 1), self.first_update + self.warmup)

    @property
    def warmup(self) -> int:
        """Epochs the weights stay fixed before the schedule starts (the scheme's ``weight_warmup``, 0 if none)."""
        return int(getattr(self.scheme, "weight_warmup", 0))

    def should_update(self, epoch: int) -> bool:
        """Whether a dynamic scheme updates at this epoch, before its step: epochs ``first_update``,
        ``first_update + tau``, ... (0, tau, 2 tau, ... by default)."""
        return self.dynamic and self.schedule.is_update(epoch)

    @staticmethod
    def combine(G: Tensor, lam: Tensor) -> Tensor:
        """Weighted gradient ``sum_j lam_j G_j``: ``G[K, P], lam[K] -> [P]``; ``G[S, K, P], lam[S, K] -> [S, P]``."""
        if G.dim() == 2:
            return lam.to(G.dtype) @ G
        return torch.bmm(lam.to(G.dtype).unsqueeze(1), G).squeeze(1)

    # ------------------------------------------------------------------------------------ reporting
    def skipped_counts(self) -> Tensor:
        """``[S, K]`` number of updates in which each term kept its weight (zero/non-finite statistic)."""
        if self.skipped is None:
            raise RuntimeError("the Weighter has no state yet")
        return self.skipped

    def state_dict(self) -> dict[str, Any]:
        return {
            "lam": self.lam, "lam_applied": self.lam_applied,
            "n_updates": self.n_updates, "skipped": self.skipped,
            # a loss-based scheme's own tensors, flat (every value a tensor): "scheme.prev", ...
            **{f"scheme.{k}": v for k, v in self.scheme_state.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("lam", "lam_applied", "n_updates", "skipped"):
            if key not in state:
                raise ValueError(f"state is missing {key!r}")
        lam = state["lam"]
        if lam is None:
            self.lam = self.lam_applied = self.n_updates = self.skipped = None
            return
        if lam.shape[-1] != self.n_terms:
            raise ValueError(f"state has {lam.shape[-1]} terms, this Weighter {self.n_terms}")
        self.lam = lam.clone()
        self.lam_applied = state["lam_applied"].clone()
        self.n_updates = state["n_updates"].clone()
        self.skipped = state["skipped"].clone()
        self._members = lam.shape[0]
        self._adaptive = self._target_mask(lam.device)
        self.scheme_state = {k[len("scheme."):]: v.clone() for k, v in state.items() if k.startswith("scheme.")}
        if isinstance(self.scheme, LossScheme):
            want = self.scheme.init_state(self._members, self.n_terms, lam.dtype, lam.device)
            if set(want) != set(self.scheme_state):
                raise ValueError(f"state has scheme tensors {sorted(self.scheme_state)}, the scheme "
                                 f"{self.scheme.name!r} needs {sorted(want)}")

    def __repr__(self) -> str:
        return (f"Weighter({self.scheme!r}, n_terms={self.n_terms}, reference={self.reference}, "
                f"adaptive={list(self.adaptive_mask)})")
