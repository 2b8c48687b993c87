"""The paper's four schemes (Deguchi & Asai 2023): PINN (fixed weights), MA, ID and DN.

For the dynamic schemes the candidate weight of an adaptive term ``j`` against the reference term ``r`` (the
PDE residual by default) is computed from the per-term gradients ``g = grad_theta L``:

* ``MA``: ``max|g_r| / (lam_j * mean|g_j|)`` (eq. 15, ``form="paper"``) or ``max|g_r| / mean|g_j|``
  (``form="wang"``, Wang et al.'s code), with ``lam_j`` the weight currently applied to the term;
* ``ID``: ``std(g_r) / std(g_j)`` (sample standard deviations);
* ``DN``: ``||g_r||_p / ||g_j||_p``.

and smoothed as ``lam <- beta * lam + (1 - beta) * candidate`` every ``tau`` epochs; with ``bias_correction``
the applied weight is ``lam / (1 - beta^n)`` where ``n`` counts the term's own (valid) updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..ops import layout as L
from .base import (FixedWeights, GradientStatsScheme, bias_correction_flag, ema_beta, param, stat_ratio, update_interval,
                   weight_bound, weight_warmup)
from .registry import register

__all__ = ["PINN", "MA", "ID", "DN"]


@register("pinn", title="PINN")
@dataclass(frozen=True)
class PINN(FixedWeights):
    """Fixed weights. ``weights``: one per loss term (``None``: all 1)."""

    weights: Optional[Sequence[float]] = param(None, kind="floats", optional=True, minimum=0.0,
                                               help="fixed weight of each loss term (none: all 1)")


@register("ma", title="MA-PINN")
@dataclass(frozen=True)
class MA(GradientStatsScheme):
    """Max-over-mean weights (Wang et al. 2021), eq. 15 of the paper by default."""

    beta: float = ema_beta()
    bias_correction: bool = bias_correction_flag()
    tau: int = update_interval()
    form: str = param("paper", choices=("paper", "wang"), key="ma_form", symbol="form",
                      help="'paper' (eq. 15: divide by the applied weight) or 'wang' (Wang et al.'s code)")
    weight_min: Optional[float] = weight_bound("min")
    weight_max: Optional[float] = weight_bound("max")
    weight_warmup: int = weight_warmup()

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        # max|g_r| / (c_j mean|g_j|), c_j = lam_applied (eq. 15) or 1 (Wang et al.'s code)
        den = stats[:, :, L.SUM_ABS] / numel
        if self.form == "paper":
            den = den * lam_applied
        return stat_ratio(stats[:, reference, L.MAX_ABS], den, stats, reference)


@register("id", title="ID-PINN")
@dataclass(frozen=True)
class ID(GradientStatsScheme):
    """Inverse-Dirichlet weights: ratio of sample standard deviations of the gradients."""

    beta: float = ema_beta()
    bias_correction: bool = bias_correction_flag()
    tau: int = update_interval()
    weight_min: Optional[float] = weight_bound("min")
    weight_max: Optional[float] = weight_bound("max")
    weight_warmup: int = weight_warmup()

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        # Bessel-corrected sample std; numel == 1 gives NaN -> invalid, the honest outcome.
        m2 = stats[:, :, L.M2]
        std = (m2 / (numel - 1)).sqrt() if numel > 1 else torch.full_like(m2, math.nan)
        return stat_ratio(std[:, reference], std, stats, reference)


@register("dn", title="DN-PINN")
@dataclass(frozen=True)
class DN(GradientStatsScheme):
    """Dynamic norm-based weights: ratio of L^p norms of the gradients (``p >= 1`` or ``math.inf``).

    ``fastpinn train`` uses ``beta = 0.99`` unless ``--beta`` is given: with 0.9 the weight of the initial
    condition collapses on Burgers (u = 0 solves the PDE), see docs/weights.md; the class keeps the paper's 0.9."""

    beta: float = ema_beta(cli_default=0.99)
    p: float = param(2.0, minimum=1.0, finite=False, help="norm exponent of the gradients, >= 1 or inf")
    bias_correction: bool = bias_correction_flag()
    tau: int = update_interval()
    weight_min: Optional[float] = weight_bound("min")
    weight_max: Optional[float] = weight_bound("max")
    weight_warmup: int = weight_warmup()

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        norm = stats[:, :, L.NORM_P]
        return stat_ratio(norm[:, reference], norm, stats, reference)
