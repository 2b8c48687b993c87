"""Aggregators: schemes that choose the update *direction* from the per-term gradients, every step.

On an update step the :class:`~fastpinn.WeightedBackward` runs the ``K`` per-term backwards into
``G[S, K, P]`` (``reads == "stats"``, as the gradient-statistics schemes), forms the Gram matrices ``G Gᵀ`` in
one pass (:func:`fastpinn.ops.grad_gram`, float64) instead of the statistics, asks the scheme for the weights
``w[S, K]`` (:meth:`AggregatorScheme.aggregate`: a solver of :mod:`fastpinn.aggregation.solvers`, batched over the
ensemble, fixed iterations or closed form, no host sync) and sets ``.grad`` to the direction ``sum_k w_k G_k``.
No EMA: the weights are the solver's. ``tau`` counts *steps* (calls), not epochs: ``tau = 1`` (default, the
papers) solves every step, mini-batches included; ``tau > 1`` reuses the last weights in between (as LibMTL's
``update_weights_every`` for Nash-MTL), where a host-gate step is one backward of ``sum_k w_k L_k``. With data
parallelism ``G`` is reduced before the Gram, so every rank solves the same problem from the same bits and
takes the same direction.

M-ConFIG (:class:`MConFIG`, ``reads == "momentum"``) differs: one backward of one term per step, the terms in
turn, each term's gradient kept in a momentum buffer ``m[S, K, P]`` (bias-corrected by its own count), ConFIG
on the momenta, and the direction combines the momenta.

Every method treats the terms alike (no reference term), except DCGD, which reads term 0 as the PDE residual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch
from torch import Tensor

from ..aggregation import solvers
from ..aggregation.gram import scaled_gram
from .base import StatefulScheme, param
from .losses import uniform_draws
from .registry import register

__all__ = ["AggregatorScheme", "PCGrad", "MGDA", "CAGrad", "IMTLG", "AlignedMTL", "NashMTL", "UPGrad", "ConFIG",
           "MConFIG", "DCGD", "is_aggregator", "check_closure_optimizer"]


def is_aggregator(scheme: Any) -> bool:
    """Whether ``scheme`` chooses the update direction (an :class:`AggregatorScheme`)."""
    return isinstance(scheme, AggregatorScheme)


def check_closure_optimizer(scheme: Any, optimizer: str) -> None:
    """Refuse M-ConFIG with a closure optimizer (L-BFGS; ``optimizer``: its name, for the message).

    A closure optimizer needs the gradient of the loss its closure returns, at every point it evaluates: its
    line search compares directional derivatives along the step and its curvature pairs are differences of
    gradients. M-ConFIG's direction combines *momenta* of earlier steps' gradients, the gradient of no loss,
    so the first call's direction and the line search's trial gradients would be of different functions.
    Advancing the momenta once per optimizer step (as the closure's first call does) cannot repair that, so
    the combination is refused; ConFIG (no momentum) gives the gradient of ``sum_k w_k L_k`` with the
    weights fixed within the step, which L-BFGS can follow."""
    if isinstance(scheme, MConFIG):
        raise ValueError(f"scheme 'm-config' cannot train with optimizer {optimizer!r}: its direction combines "
                         "momenta of earlier gradients, not the gradient of the loss L-BFGS's line search "
                         "evaluates; use optimizer 'adam', or scheme 'config' (ConFIG, no momentum) with L-BFGS")


def _iters() -> Any:
    """``iters``: the fixed iteration count of an iterative solver (no convergence test: no host sync)."""
    return param(None, kind="int", optional=True, minimum=1, maximum=100_000, symbol="iters",
                 help="fixed iterations of the aggregator's solver ('none': the solver's default)")


@dataclass(frozen=True)
class AggregatorScheme(StatefulScheme):
    """Base of the aggregators: :meth:`aggregate` maps ``gram[S, K, K]`` (float64) to ``w[S, K]`` (float64)
    with ``d_s = sum_k w[s, k] g_{s, k}``. ``solver``: the name of the function of
    :mod:`fastpinn.aggregation.solvers` (looked up at call time); :meth:`solver_kwargs` its hyper-parameters.
    ``tau`` (declared by each method, default 1) counts steps; the weights start at 1 (the plain sum) until the
    first update."""

    reads: ClassVar[str] = "stats"  # the per-term gradients G on update steps
    every_call: ClassVar[bool] = True  # tau counts calls, mini-batches included
    solver: ClassVar[str] = ""

    def solver_kwargs(self, gram: Tensor, n_updates: Tensor) -> dict[str, Any]:
        """Keyword arguments of the solver besides ``gram`` (declared hyper-parameters; ``None``: not passed)."""
        return {}

    def aggregate(self, gram: Tensor, n_updates: Tensor) -> Tensor:
        """``w[S, K]`` from ``gram[S, K, K]``; ``n_updates[S]`` the members' update counts before this one
        (the counter of a random draw). Pure, no host sync."""
        fn = getattr(solvers, self.solver)
        return fn(gram, **self.solver_kwargs(gram, n_updates))

    def init_state(self, members: int, n_terms: int, dtype: torch.dtype, device: Any,
                   n_params: Optional[int] = None) -> dict[str, Tensor]:
        return {}


def _steps_between_updates() -> Any:
    return param(1, minimum=1, symbol="τ", help="steps between direction updates (1: every step, the papers'; "
                 "more: the last weights reused in between)")


def _with_iters(scheme: Any, kwargs: Optional[dict] = None) -> dict[str, Any]:
    out = dict(kwargs or {})
    if scheme.iters is not None:
        out["iters"] = scheme.iters
    return out


@register("pcgrad", title="PCGrad")
@dataclass(frozen=True)
class PCGrad(AggregatorScheme):
    """PCGrad, Yu et al., NeurIPS 2020, Algorithm 1: each ``g_i`` projected off the ``g_j`` it conflicts with,
    in a random order, then summed. The order of each step and member is drawn from ``seed``, the member and
    its update count by a counter-based generator (:func:`fastpinn.schemes.losses.uniform_draws`): no generator
    state to checkpoint beyond the update count, the same draws on the device gate and the host gate, and on
    every rank. Algorithm 1 of the paper visits the other tasks "in random order" for each task; the authors'
    TensorFlow code shuffles the tasks once per step and projects every task in that order (skipping nothing:
    a task's own row never conflicts with it at the start). This follows the code: one order per step and
    member, the task itself skipped."""

    seed: int = param(0, minimum=0, key="pcgrad_seed", symbol="seed", help="seed of PCGrad's random projection order")
    solver: ClassVar[str] = "pcgrad_weights"
    tau: int = _steps_between_updates()

    def order(self, members: int, n_terms: int, n_updates: Tensor) -> Tensor:
        """``[S, K]`` int64: this step's projection order of each member (a permutation of ``0..K-1``)."""
        member = torch.arange(members, device=n_updates.device).unsqueeze(1)
        counter = n_updates.unsqueeze(1) * n_terms + torch.arange(n_terms, device=n_updates.device).unsqueeze(0)
        return torch.argsort(uniform_draws(self.seed, member.expand(-1, n_terms), counter), dim=1)

    def solver_kwargs(self, gram: Tensor, n_updates: Tensor) -> dict[str, Any]:
        return {"order": self.order(gram.shape[0], gram.shape[1], n_updates)}


@register("mgda", title="MGDA")
@dataclass(frozen=True)
class MGDA(AggregatorScheme):
    """MGDA, Sener & Koltun, NeurIPS 2018: the min-norm point of the convex hull of the ``g_k`` (Frank-Wolfe
    on the Gram matrix, a fixed number of iterations)."""

    iters: Optional[int] = _iters()
    solver: ClassVar[str] = "mgda_weights"
    tau: int = _steps_between_updates()

    def solver_kwargs(self, gram: Tensor, n_updates: Tensor) -> dict[str, Any]:
        return _with_iters(self)


@register("cagrad", title="CAGrad")
@dataclass(frozen=True)
class CAGrad(AggregatorScheme):
    """CAGrad, Liu et al., NeurIPS 2021: the direction that maximises the worst term's improvement within a ball
    of radius ``c |g_0|`` around the mean gradient (its dual, a small convex problem on the Gram matrix)."""

    c: float = param(0.5, minimum=0.0, key="cagrad_c", symbol="c", shown=True,
                     help="CAGrad's radius c >= 0 of the ball around the mean gradient")
    iters: Optional[int] = _iters()
    solver: ClassVar[str] = "cagrad_weights"
    tau: int = _steps_between_updates()

    def solver_kwargs(self, gram: Tensor, n_updates: Tensor) -> dict[str, Any]:
        return _with_iters(self, {"c": self.c})


@register("imtl-g", title="IMTL-G")
@dataclass(frozen=True)
class IMTLG(AggregatorScheme):
    """IMTL-G, Liu et al., ICLR 2021: the weights whose direction has equal projections on every unit
    gradient (a K x K linear solve, pseudo-inverse on the Gram matrix)."""

    solver: ClassVar[str] = "imtl_g_weights"
    tau: int = _steps_between_updates()


@register("aligned-mtl", title="Aligned-MTL")
@dataclass(frozen=True)
class AlignedMTL(AggregatorScheme):
    """Aligned-MTL, Senushkin et al., CVPR 2023: the gradient matrix aligned to its smallest singular value
    (eigen-decomposition of the Gram matrix)."""

    solver: ClassVar[str] = "aligned_mtl_weights"
    tau: int = _steps_between_updates()


@register("nash-mtl", title="Nash-MTL")
@dataclass(frozen=True)
class NashMTL(AggregatorScheme):
    """Nash-MTL, Navon et al., ICML 2022: the Nash bargaining solution ``(G Gᵀ) w = 1 / w`` (fixed iterations
    on the device instead of the paper's convex solver)."""

    iters: Optional[int] = _iters()
    solver: ClassVar[str] = "nash_mtl_weights"
    tau: int = _steps_between_updates()

    def solver_kwargs(self, gram: Tensor, n_updates: Tensor) -> dict[str, Any]:
        return _with_iters(self)


@register("upgrad", title="UPGrad")
@dataclass(frozen=True)
class UPGrad(AggregatorScheme):
    """UPGrad, Quinton & Rey 2024 ("Jacobian descent"): the mean of the projections of every row onto the dual
    cone of the rows (one small quadratic program per row)."""

    solver: ClassVar[str] = "upgrad_weights"
    tau: int = _steps_between_updates()


@register("config", title="ConFIG")
@dataclass(frozen=True)
class ConFIG(AggregatorScheme):
    """ConFIG, Liu, Chu & Thuerey, ICLR 2025: the direction with equal positive cosine to every gradient (least
    squares on the normalised rows), scaled by the sum of the gradients' projections on it."""

    solver: ClassVar[str] = "config_weights"
    tau: int = _steps_between_updates()


@register("dcgd", title="DCGD")
@dataclass(frozen=True)
class DCGD(AggregatorScheme):
    """Dual cone gradient descent, Hwang & Lim, NeurIPS 2024: from ``|g_PDE|``, ``|g_rest|`` and their dot
    product (term 0 is the PDE residual, the rest summed), a direction in the dual cone of the two."""

    variant: str = param("center", choices=("projection", "average", "center"), key="dcgd_variant",
                         symbol="variant", shown=True, help="DCGD's rule: projection, average or center")
    solver: ClassVar[str] = "dcgd_weights"
    tau: int = _steps_between_updates()

    def solver_kwargs(self, gram: Tensor, n_updates: Tensor) -> dict[str, Any]:
        return {"variant": self.variant}


@register("m-config", title="M-ConFIG")
@dataclass(frozen=True)
class MConFIG(AggregatorScheme):
    """M-ConFIG, Liu, Chu & Thuerey, ICLR 2025: one backward of one term per step (the terms in turn), each
    term's gradient kept in a momentum ``m_k <- beta m_k + (1 - beta) g_k`` (updated only on its own steps,
    bias-corrected by its own count ``c_k``: ``m_k / (1 - beta^c_k)``), and ConFIG on the corrected momenta,
    whose combination is the direction.

    The first ``K - 1`` steps, before every term has been seen, are left open by the paper: here the direction
    is ConFIG of the terms seen so far (the unseen ones enter the solver as unit vectors orthogonal to every
    other row -- which separates them exactly from the least-squares problem of the seen rows -- with weight 0,
    and the length is then set by ConFIG's rule ``sum_seen (m_k . u) u``). So a step costs one backward from
    the first one on.

    State: ``momentum[S, K, P]`` and ``count[S, K]`` (int64), checkpointed with the weights."""

    beta: float = param(0.9, minimum=0.0, maximum=1.0, high_open=True, key="momentum_beta", symbol="β",
                        shown=True, help="M-ConFIG's momentum decay of each term's gradient, in [0, 1)")
    reads: ClassVar[str] = "momentum"
    solver: ClassVar[str] = "config_weights"
    tau: int = _steps_between_updates()

    def init_state(self, members: int, n_terms: int, dtype: torch.dtype, device: Any,
                   n_params: Optional[int] = None) -> dict[str, Tensor]:
        return {"momentum": torch.zeros(members, n_terms, n_params or 0, dtype=dtype, device=device),
                "count": torch.zeros(members, n_terms, dtype=torch.int64, device=device)}

    def momentum_step(self, G: Tensor, term: Any, state: dict[str, Tensor], gram_of: Any, on: Tensor) -> Tensor:
        """Fold row ``term`` of ``G[S, K, P]`` into its momentum (``term``: an int or a 0-dim int64 tensor;
        where ``on`` is False nothing changes) and return the weights ``w[S, K]`` (float64) of the momenta
        themselves: the direction is ``sum_k w_k m_k``. ``gram_of``: ``momenta -> gram`` (the fused kernel)."""
        m, count = state["momentum"], state["count"]
        K = G.shape[1]
        mine = ((torch.arange(K, device=G.device) == term) & on).unsqueeze(0)  # [1, K]
        m.copy_(torch.where(mine.unsqueeze(2), self.beta * m + (1.0 - self.beta) * G, m))
        count.add_(mine.to(torch.int64))
        seen = count > 0  # [S, K]
        correction = 1.0 - torch.pow(self.beta, count.to(torch.float64))
        scale = torch.where(seen, 1.0 / torch.where(seen, correction, 1.0), 0.0)
        # ConFIG on the corrected momenta m_k / (1 - beta^c_k): their Gram is D gram(m) D, D = diag(scale)
        gram = scaled_gram(gram_of(m), scale)
        unseen = ~seen
        w = getattr(solvers, self.solver)(gram + torch.diag_embed(unseen.to(gram.dtype)))
        w = torch.where(seen, w, 0.0)
        # ConFIG's length over the seen rows: v = sum w_k m_k -> (sum_k m_k . v / |v|^2) v
        gw = (gram @ w.unsqueeze(2)).squeeze(2)
        norm2 = (w * gw).sum(dim=1, keepdim=True)
        length = torch.where(norm2 > 0, gw.sum(dim=1, keepdim=True) / torch.where(norm2 > 0, norm2, 1.0), 1.0)
        w = torch.where(unseen.any(dim=1, keepdim=True), w * length, w)
        return w * scale
