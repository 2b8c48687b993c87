"""Schemes with their own state: SoftAdapt, ReLoBRaLo and Uncertainty read the term losses alone; GradNorm
trains its weights from gradient statistics and the losses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ..ops import layout as L
from .base import LossScheme, StatefulStatsScheme, losses_ok, param, update_interval
from .registry import register

__all__ = ["SoftAdapt", "ReLoBRaLo", "Uncertainty", "GradNorm", "uniform_draws"]

_MOD = 2147483647  # 2^31 - 1: products with the multipliers below stay far inside int64


def uniform_draws(seed: int, member: Tensor, counter: Tensor) -> Tensor:
    """Counter-based uniform numbers in (0, 1), float64: a pure function of ``(seed, member, counter)``.

    Integer tensor operations on the device (multiplicative congruential rounds mod 2^31 - 1 interleaved with
    xor-shifts), so drawing never synchronises with the host, needs no generator state in a checkpoint, is
    safe inside a captured CUDA graph, and gives the same numbers whether update calls are skipped on the host
    or gated on the device (the counter is the member's own update count). ``member``, ``counter``: int64
    tensors of one shape; the result has that shape.
    """
    x = (member * 7919 + counter * 104729 + (int(seed) % _MOD) * 15485863 + 1) % _MOD
    for mult in (48271, 69621, 16807, 48271):
        x = (x * mult) % _MOD
        x = x ^ (x >> 11)
    return (x.to(torch.float64) + 0.5) / _MOD


def _masked_softmax(z: Tensor, target: Tensor) -> Tensor:
    """``K' softmax(z)`` over the target terms (``K'`` of them), 1 elsewhere. ``z[S, K]``, ``target[K]``."""
    n = target.sum().to(z.dtype)
    e = torch.softmax(z.masked_fill(~target.unsqueeze(0), -math.inf), dim=1)
    return torch.where(target.unsqueeze(0), n * e, torch.ones_like(z))


def _adam(x: Tensor, grad: Tensor, m: Tensor, v: Tensor, t: Tensor, lr: float, betas: tuple, eps: float):
    """One Adam step (Kingma & Ba 2015, Algorithm 1) on ``x[S, K]`` with per-member step counts ``t[S]``:
    returns ``(x, m, v, t)`` updated. Tensor operations only (no host sync), so it can be gated by where."""
    b1, b2 = betas
    t1 = t + 1
    m1 = b1 * m + (1 - b1) * grad
    v1 = b2 * v + (1 - b2) * grad * grad
    tf = t1.to(torch.float64).unsqueeze(1)
    corr1 = (1 - torch.pow(b1, tf)).to(x.dtype)
    corr2 = (1 - torch.pow(b2, tf)).to(x.dtype)
    return x - lr * (m1 / corr1) / ((v1 / corr2).sqrt() + eps), m1, v1, t1


def _temperature(default: float = 0.1):
    return param(default, minimum=0.0, low_open=True, symbol="T", shown=True,
                 help="softmax temperature T, a finite number > 0")


def _every_step():
    """``tau`` of a scheme whose weights are trained every step: 1, and nothing else."""
    return update_interval(1, choices=(1,), hint=" (the weights are trained every step)")


# Adam of the trainable weights (Uncertainty's s, GradNorm's w): keys apart from the network's --lr.
def _weights_lr(default: float):
    return param(default, minimum=0.0, low_open=True, key="weights_lr", symbol="lr",
                 help="Adam learning rate of the trainable loss weights")


def _weights_betas():
    return param((0.9, 0.999), length=2, minimum=0.0, maximum=1.0, high_open=True, key="weights_betas",
                 symbol="betas", help="Adam betas of the trainable loss weights, two numbers in [0, 1)")


def _weights_eps():
    return param(1e-8, minimum=0.0, low_open=True, key="weights_eps", symbol="eps",
                 help="Adam eps of the trainable loss weights")


@register("softadapt", title="SoftAdapt")
@dataclass(frozen=True)
class SoftAdapt(LossScheme):
    """SoftAdapt, Heydari, Thompson & Mehmood 2019 (arXiv:1912.12355).

    ``lam_j = K softmax_j(s_j / T)`` with ``s_j`` the rate of change of term ``j``'s loss since the
    previous update: ``rate="relative"`` (default) ``s_j = (L_j(t) - L_j(t-1)) / L_j(t-1)``, scale-free
    across terms; ``rate="difference"`` the paper's ``s_j = L_j(t) - L_j(t-1)`` (its ``beta`` is ``1/T``).
    The factor ``K`` (the number of adaptive terms) keeps the weights on the scale of the unweighted sum.
    The first update only records the losses (weights stay 1). ``tau``: update every ``tau`` epochs.
    """

    tau: int = update_interval(1)
    temperature: float = _temperature()
    rate: str = param("relative", choices=("relative", "difference"),
                      help="rate of change 'relative' (scale-free) or 'difference' (the paper's)")

    def propose(self, losses, lam, state, target, n_updates):
        prev, started = state["prev"], state["started"]
        diff = losses - prev
        s = diff / prev if self.rate == "relative" else diff
        new_lam = torch.where(started.unsqueeze(1), _masked_softmax(s / self.temperature, target), lam)
        return new_lam, losses_ok(losses, target), {"prev": losses.to(prev.dtype),
                                                    "started": torch.ones_like(started)}


@register("relobralo", title="ReLoBRaLo")
@dataclass(frozen=True)
class ReLoBRaLo(LossScheme):
    """Relative loss balancing with random lookback, Bischof & Kraus 2021 (arXiv:2110.09813), eqs. 10-12.

    ``lam_j(t) = alpha (rho lam_j(t-1) + (1 - rho) lam_j^(0->t)) + (1 - alpha) lam_j^(t-1->t)`` with
    ``lam^(a->b) = K softmax(L(b) / (T L(a)))`` (``K`` adaptive terms) and ``rho ~ Bernoulli(rho_mean)``
    drawn per member and update on the device (:func:`uniform_draws` with ``seed``, keyed by the member's
    update count: no host sync, no generator state). The first update records ``L(0)`` (weights stay 1);
    ``t - 1`` is the previous update (``tau`` epochs before). Defaults ``alpha = 0.999``,
    ``rho_mean = 0.999``, ``T = 0.1``.
    """

    tau: int = update_interval(1)
    alpha: float = param(0.999, minimum=0.0, maximum=1.0, symbol="α",
                         help="weight of the history against the last lookback, in [0, 1]")
    rho_mean: float = param(0.999, minimum=0.0, maximum=1.0, symbol="E[ρ]",
                            help="probability of keeping the history over a look back to the start")
    temperature: float = _temperature()
    seed: int = param(0, minimum=0, key="lookback_seed", symbol="seed",
                      help="seed of the Bernoulli draws of rho")

    def init_state(self, members, n_terms, dtype, device):
        state = super().init_state(members, n_terms, dtype, device)
        state["initial"] = torch.ones(members, n_terms, dtype=dtype, device=device)
        return state

    def rho(self, n_updates: Tensor) -> Tensor:
        """``[S]`` Bernoulli(rho_mean) draws (0/1 in float64) for the update after ``n_updates[S]`` updates."""
        member = torch.arange(n_updates.shape[0], device=n_updates.device)
        return (uniform_draws(self.seed, member, n_updates) < self.rho_mean).to(torch.float64)

    def propose(self, losses, lam, state, target, n_updates):
        prev, initial, started = state["prev"], state["initial"], state["started"]
        t = self.temperature
        lookback = _masked_softmax(losses / (t * prev), target)
        from_start = _masked_softmax(losses / (t * initial), target)
        rho = self.rho(n_updates).to(lam.dtype).unsqueeze(1)
        blended = self.alpha * (rho * lam + (1 - rho) * from_start) + (1 - self.alpha) * lookback
        go = started.unsqueeze(1)
        new_lam = torch.where(go & target.unsqueeze(0), blended, lam)
        new_initial = torch.where(go, initial, losses.to(initial.dtype))
        return new_lam, losses_ok(losses, target), {"prev": losses.to(prev.dtype), "initial": new_initial,
                                                    "started": torch.ones_like(started)}


@register("uncertainty", title="Uncertainty")
@dataclass(frozen=True)
class Uncertainty(LossScheme):
    """Uncertainty weighting, Kendall, Gal & Cipolla 2018 (CVPR), eq. 7 in its log-variance form:
    ``L = sum_j 1/2 exp(-s_j) L_j + 1/2 s_j`` with trainable ``s_j = log sigma_j^2`` (initially 0).

    The gradient with respect to the network is that of ``sum_j lam_j L_j`` with ``lam_j = exp(-s_j) / 2``
    (the ``s_j / 2`` term does not depend on it), so a step is one backward of the weighted sum, a PINN-cost
    step. ``s`` is trained jointly, by Adam (``lr``, ``betas``, ``eps``; torch.optim.Adam's update rule) on
    its exact gradient ``dL/ds_j = (1 - exp(-s_j) L_j) / 2`` -- the same as putting ``s`` into the network's
    optimizer, but inside the Weighter's state (checkpointed, gated on the device, no host sync). As in a
    joint gradient step, the weights applied at a step use ``s`` before that step's update of ``s``.
    ``tau`` must be 1 (``s`` is trained every step).
    """

    tau: int = _every_step()
    lr: float = _weights_lr(1e-3)
    betas: tuple = _weights_betas()
    eps: float = _weights_eps()

    def init_state(self, members, n_terms, dtype, device):
        z = torch.zeros(members, n_terms, dtype=dtype, device=device)
        return {"s": z, "m": z.clone(), "v": z.clone(),
                "t": torch.zeros(members, dtype=torch.int64, device=device)}

    def initial_weights(self, members, n_terms, dtype, device) -> Tensor:
        return torch.full((members, n_terms), 0.5, dtype=dtype, device=device)

    def propose(self, losses, lam, state, target, n_updates):
        s_, m, v, t = state["s"], state["m"], state["v"], state["t"]
        tgt = target.unsqueeze(0)
        new_lam = torch.where(tgt, 0.5 * torch.exp(-s_), lam)  # the weights of this step: s before its update
        grad = torch.where(tgt, 0.5 * (1.0 - torch.exp(-s_) * losses), torch.zeros_like(s_))
        s1, m1, v1, t1 = _adam(s_, grad, m, v, t, self.lr, self.betas, self.eps)
        return new_lam, losses_ok(losses, target), {"s": s1, "m": m1, "v": v1, "t": t1}


@register("gradnorm", title="GradNorm")
@dataclass(frozen=True)
class GradNorm(StatefulStatsScheme):
    """GradNorm, Chen, Badrinarayanan, Lee & Rabinovich 2018 (ICML), Algorithm 1: trainable weights ``w_j``.

    With ``G_j = ||grad_W (w_j L_j)|| = w_j ||grad_W L_j||`` on a parameter subset ``W``,
    ``Gbar = mean_j G_j``, ``r_j = Ltilde_j / mean_k Ltilde_k`` and ``Ltilde_j = L_j(t) / L_j(0)``, the weights
    minimise ``L_grad = sum_j |G_j - Gbar r_j^alpha|`` with the target ``Gbar r_j^alpha`` held constant, so
    ``dL_grad/dw_j = sign(G_j - Gbar r_j^alpha) ||grad_W L_j||``; one Adam step (``lr``, ``betas``, ``eps``)
    per training step, then ``w`` is renormalised to ``sum_j w_j = K`` (over the adaptive terms). As in the
    paper, the network's step at time ``t`` uses ``w(t)``, the weights before their own update.

    ``columns = (start, stop)``: ``W`` as a slice of the flat parameter vector ``theta``
    (:meth:`last_hidden_layer` gives the paper's choice, the weights of the last shared layer, for an
    :class:`~fastpinn.network.MLP`); ``None`` uses all parameters. The step gives the Weighter the per-term
    gradients' statistics of those columns and the term losses:
    ``w.update_from_stats(w.statistics(G), P, active, losses=losses)``. ``tau`` must be 1.
    """

    tau: int = _every_step()
    alpha: float = param(1.5, minimum=0.0, symbol="α", shown=True,
                         help="strength of the restoring force alpha, a finite number >= 0")
    lr: float = _weights_lr(0.025)
    betas: tuple = _weights_betas()
    eps: float = _weights_eps()
    columns: Optional[tuple] = param(None, kind="ints", optional=True, length=2, minimum=0,
                                     help="the parameter subset W as columns start,stop of theta "
                                          "(none: all parameters)")

    def check(self) -> None:
        if self.columns is not None and not self.columns[0] < self.columns[1]:
            raise ValueError(f"columns must be None or (start, stop) with 0 <= start < stop, got {self.columns!r}")

    @staticmethod
    def last_hidden_layer(net) -> tuple:
        """``(start, stop)`` of the weight matrix of ``net``'s last hidden layer in ``theta``."""
        offsets = net.layer_offsets
        w_off, b_off, _ = offsets[-2] if len(offsets) >= 2 else offsets[-1]
        return (w_off, b_off)

    def init_state(self, members, n_terms, dtype, device):
        z = torch.zeros(members, n_terms, dtype=dtype, device=device)
        return {"w": torch.ones_like(z), "initial": torch.ones_like(z), "m": z, "v": z.clone(),
                "t": torch.zeros(members, dtype=torch.int64, device=device),
                "started": torch.zeros(members, dtype=torch.bool, device=device)}

    def propose_from_stats(self, stats: Tensor, losses: Tensor, lam: Tensor, state: dict[str, Tensor],
                           target: Tensor, n_updates: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        w, initial, started = state["w"], state["initial"], state["started"]
        tgt = target.unsqueeze(0)
        k = target.sum().to(w.dtype)
        norms = stats[:, :, L.NORM_P]  # ||grad_W L_j||_2 (p = 2)
        initial = torch.where(started.unsqueeze(1), initial, losses)
        G = w * norms
        gbar = torch.where(tgt, G, torch.zeros_like(G)).sum(1, keepdim=True) / k
        ratio = losses / initial
        r = ratio / (torch.where(tgt, ratio, torch.zeros_like(ratio)).sum(1, keepdim=True) / k)
        grad = torch.where(tgt, torch.sign(G - gbar * r.pow(self.alpha)) * norms, torch.zeros_like(G))
        w1, m1, v1, t1 = _adam(w, grad, state["m"], state["v"], state["t"], self.lr, self.betas, self.eps)
        w1 = torch.where(tgt, w1, torch.ones_like(w1))
        w1 = torch.where(tgt, w1 * k / torch.where(tgt, w1, torch.zeros_like(w1)).sum(1, keepdim=True), w1)
        new_lam = torch.where(tgt, w, lam)  # this step's weights: w(t), before its update
        nonfinite = (stats[:, :, L.NONFINITE] != 0) & tgt
        ok_norms = ~((~(torch.isfinite(norms) & (norms > 0)) & tgt) | nonfinite).any(dim=1)
        valid = ok_norms & losses_ok(losses, target) & torch.isfinite(w1).all(dim=1)
        return new_lam, valid, {"w": w1, "initial": initial, "m": m1, "v": v1, "t": t1,
                                "started": torch.ones_like(started)}
