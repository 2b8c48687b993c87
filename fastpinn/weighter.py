"""Turn per-term gradients into loss weights: the part of fastpinn usable in anyone's own loop.

    w = fastpinn.Weighter(fastpinn.DN(beta=0.99, p=2.0, bias_correction=True), n_terms=3, reference=0)
    lam = w.update(G)                  # G[K, P] or G[S, K, P] -> weights to apply now, [K] or [S, K]
    theta.grad = w.combine(G, lam)     # sum_j lam_j G_j -> [P] or [S, P]

All state (weights, the update count, skip counters) lives in tensors on ``G``'s device and is updated
in place by the compiled ops, so an update never synchronises with the host.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from . import ops
from .schemes import PINN, DynamicScheme, Scheme

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
        scheme: ``PINN(...)``, ``MA(...)``, ``ID(...)`` or ``DN(...)``.
        n_terms: number of loss terms ``K >= 1``.
        reference: index of the reference term (weight fixed at 1; the PDE residual by default, 0).
        adaptive: which terms get dynamic weights (``[K]`` bools); default all but the reference.
            Non-adaptive terms keep weight 1.
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
        if not isinstance(scheme, (PINN, DynamicScheme)):
            raise ValueError(f"scheme must be one of fastpinn.PINN, MA, ID, DN, got {scheme!r}")
        if isinstance(n_terms, bool) or not isinstance(n_terms, int) or n_terms < 1:
            raise ValueError(f"n_terms must be an integer >= 1, got {n_terms!r}")
        if isinstance(reference, bool) or not isinstance(reference, int) or not 0 <= reference < n_terms:
            raise ValueError(f"reference must be an integer in [0, {n_terms}), got {reference!r}")
        if adaptive is None:
            mask = [k != reference for k in range(n_terms)]
        else:
            mask = [bool(a) for a in adaptive]
            if len(mask) != n_terms:
                raise ValueError(f"adaptive must have n_terms={n_terms} entries, got {len(mask)}")
            if mask[reference]:
                raise ValueError(f"adaptive[{reference}] must be False: the reference term's weight is fixed at 1")
        if isinstance(scheme, PINN) and scheme.weights is not None and len(scheme.weights) != n_terms:
            raise ValueError(f"PINN weights must have n_terms={n_terms} entries, got {len(scheme.weights)}")
        if backend not in ops.BACKENDS:
            raise ValueError(f"backend must be one of {ops.BACKENDS}, got {backend!r}")
        if isinstance(first_update, bool) or not isinstance(first_update, int) or first_update < 0:
            raise ValueError(f"first_update must be an integer >= 0, got {first_update!r}")
        self.first_update = first_update
        self.scheme = scheme
        self.n_terms = n_terms
        self.reference = reference
        self.adaptive_mask = tuple(mask)
        self.backend = backend
        self.lam: Optional[Tensor] = None  # [S, K] EMA state
        self.lam_applied: Optional[Tensor] = None  # [S, K] weights applied now (bias-corrected)
        self.n_updates: Optional[Tensor] = None  # [S] int64
        self.skipped: Optional[Tensor] = None  # [S, K] int64: updates a term kept its weight
        self._adaptive: Optional[Tensor] = None  # [K] bool on the state's device
        self._members: Optional[int] = None

    # ----------------------------------------------------------------------------------------- state
    @property
    def dynamic(self) -> bool:
        return bool(self.scheme.dynamic)

    def reset(self, members: int = 1, dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> None:
        """(Re)create the state for ``members`` ensemble members: weights 1 (0 for adaptive terms
        with bias correction, whose applied weight is still 1 until the first update)."""
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        k = self.n_terms
        adaptive = torch.tensor(self.adaptive_mask, dtype=torch.bool, device=device)
        if isinstance(self.scheme, PINN):
            base = torch.tensor(self.scheme.weights or [1.0] * k, dtype=dtype, device=device)
            lam = base.expand(members, k).clone()
        else:
            lam = torch.ones(members, k, dtype=dtype, device=device)
            if self.scheme.bias_correction:
                lam[:, adaptive] = 0.0
        self.lam = lam
        self.lam_applied = torch.ones_like(lam) if self.dynamic else lam.clone()
        self.n_updates = torch.zeros(members, dtype=torch.int64, device=device)
        self.skipped = torch.zeros(members, k, dtype=torch.int64, device=device)
        self._adaptive = adaptive
        self._members = members

    def _ensure_state(self, G3: Tensor) -> None:
        s = G3.shape[0]
        if self.lam is None:
            self.reset(s, G3.dtype, G3.device)
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

    def update(self, G: Tensor) -> Tensor:
        """One weight update from the per-term gradients; returns the weights to apply now.

        Args:
            G: ``[K, P]`` or ``[S, K, P]``; row ``k`` is the gradient of the (unweighted) term ``k``
                with respect to all network parameters.

        Returns:
            A copy of the applied weights: ``[K]`` for ``G[K, P]``, ``[S, K]`` for ``G[S, K, P]``.
            For ``PINN`` these are the fixed weights.
        """
        G3 = self._check_G(G)
        self._ensure_state(G3)
        if self.dynamic:
            self.update_from_stats(self.statistics(G3), G3.shape[-1])
        out = self.lam_applied.clone()
        return out if G.dim() == 3 else out.squeeze(0)

    def statistics(self, G: Tensor) -> Tensor:
        """Fused gradient statistics ``[S, K, N_STATS]`` (or ``[K, N_STATS]``) the scheme reads."""
        return ops.grad_stats(G, self.scheme.p if self.dynamic else 2.0, backend=self.backend)

    def update_from_stats(self, stats: Tensor, numel: int, active: Optional[Tensor] = None) -> None:
        """In-place EMA update from precomputed statistics ``[S, K, N_STATS]`` of rows of length ``numel``.

        ``active``: optional 0-dim bool tensor; when it is False on the device the state is left exactly as
        it was. The decision then never reaches the host, so the same kernels can run every step (e.g. in
        a captured CUDA graph) with the update switched on and off by a device-side counter.
        """
        if not self.dynamic:
            return
        if self.lam is None:
            self.reset(stats.shape[0], stats.dtype, stats.device)
        state = (self.lam, self.lam_applied, self.n_updates, self.skipped)
        before = None if active is None else [t.clone() for t in state]
        sch = self.scheme
        ops.ema_update(stats, self.lam, self.lam_applied, self.n_updates, self.skipped, self._adaptive,
                       sch.code, self.reference, sch.beta, sch.bias_correction, sch.ma_form, numel,
                       backend=self._update_backend())
        if before is not None:
            # [S, K] tensors: restoring them costs a few tiny elementwise kernels, never a host sync.
            for now, old in zip(state, before):
                now.copy_(torch.where(active, now, old))

    def _update_backend(self) -> str:
        return "cpp" if self.backend == "triton" else self.backend

    def weights(self) -> Tensor:
        """The weights applied now, ``[S, K]`` (state must exist)."""
        if self.lam_applied is None:
            raise RuntimeError("the Weighter has no state yet: call update(G) or reset(...) first")
        return self.lam_applied

    def should_update(self, epoch: int) -> bool:
        """Whether a dynamic scheme updates at this epoch, before its step: epochs ``first_update``,
        ``first_update + tau``, ... (0, tau, 2 tau, ... by default)."""
        return self.dynamic and epoch >= self.first_update and (epoch - self.first_update) % self.scheme.tau == 0

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

    def state_tensors(self) -> list[Tensor]:
        """The state tensors an update writes in place (for snapshots around CUDA-graph capture)."""
        return [] if self.lam is None else [self.lam, self.lam_applied, self.n_updates, self.skipped]

    def state_dict(self) -> dict[str, Any]:
        return {
            "lam": self.lam, "lam_applied": self.lam_applied,
            "n_updates": self.n_updates, "skipped": self.skipped,
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
        self._adaptive = torch.tensor(self.adaptive_mask, dtype=torch.bool, device=lam.device)

    def __repr__(self) -> str:
        return (f"Weighter({self.scheme!r}, n_terms={self.n_terms}, reference={self.reference}, "
                f"adaptive={list(self.adaptive_mask)})")
