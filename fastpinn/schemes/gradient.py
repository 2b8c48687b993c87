"""Published gradient-based schemes beyond the paper's four: LRA and GradNormW (gradient statistics, with their
papers' own EMA parameter) and NTK (per-term NTK traces)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ..ops import layout as L
from .base import (GradientStatsScheme, TraceScheme, bias_correction_flag, ema_beta, param, stat_ratio, update_interval,
                   weight_bound, weight_warmup)
from .registry import register

__all__ = ["LRA", "GradNormW", "NTK"]


@register("lra", title="LRA")
@dataclass(frozen=True)
class LRA(GradientStatsScheme):
    """Learning-rate annealing, Wang, Teng & Perdikaris 2021 (SIAM J. Sci. Comput. 43, A3055), Algorithm 1.

    ``hat_j = max|grad L_r| / mean|grad L_j|`` (``r`` the reference term, the PDE residual) and
    ``lam_j <- (1 - alpha) lam_j + alpha hat_j`` with ``alpha = 0.9`` in the paper, i.e. the shared EMA with
    ``beta = 1 - alpha``. The same formula as ``MA(form="wang")``, as a named scheme with the paper's
    parameter. ``tau``: update every ``tau`` epochs (the paper's code updates every 10 iterations).
    """

    alpha: float = param(0.9, minimum=0.0, maximum=1.0, low_open=True, symbol="α", shown=True,
                         help="the paper's EMA parameter: lam <- (1-alpha) lam + alpha hat, in (0, 1]")
    tau: int = update_interval()
    bias_correction: bool = bias_correction_flag()
    weight_min: Optional[float] = weight_bound("min")
    weight_max: Optional[float] = weight_bound("max")
    weight_warmup: int = weight_warmup()

    @property
    def beta(self) -> float:
        return 1.0 - self.alpha

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        return stat_ratio(stats[:, reference, L.MAX_ABS], stats[:, :, L.SUM_ABS] / numel, stats, reference)


@register("gradnorm-w", title="GradNormW")
@dataclass(frozen=True)
class GradNormW(GradientStatsScheme):
    """Gradient-norm weighting, Wang et al. 2023, "An expert's guide to training physics-informed neural
    networks" (arXiv:2308.08468), Algorithm 1 (not Chen et al.'s trainable GradNorm).

    ``hat_j = sum_k ||grad L_k||_2 / ||grad L_j||_2`` over all ``K`` terms (no reference term: every term is
    adaptive by default, the PDE residual included) and ``lam_j <- alpha lam_j + (1 - alpha) hat_j`` with
    ``alpha = 0.9``, i.e. the shared EMA with ``beta = alpha``, every ``f = tau`` steps (``f = 1000`` in
    the paper, also the default here). ``reduce="mean"`` divides the sum by ``K`` (the candidates shrink by
    the factor ``K``; one public implementation does this). A term with a zero or non-finite norm keeps its
    weight; a non-finite norm of any term makes the sum, hence every candidate, invalid.
    """

    alpha: float = param(0.9, minimum=0.0, maximum=1.0, high_open=True, symbol="α", shown=True,
                         help="the paper's EMA parameter: lam <- alpha lam + (1-alpha) hat, in [0, 1)")
    tau: int = update_interval(1000)
    reduce: str = param("sum", choices=("sum", "mean"), help="'sum' (the paper) or 'mean' (divide by K)")
    bias_correction: bool = bias_correction_flag()
    weight_min: Optional[float] = weight_bound("min")
    weight_max: Optional[float] = weight_bound("max")
    weight_warmup: int = weight_warmup()

    uses_reference = False

    @property
    def beta(self) -> float:
        return self.alpha

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        norm = stats[:, :, L.NORM_P]  # p = 2
        total = norm.sum(dim=1)
        if self.reduce == "mean":
            total = total / norm.shape[1]
        hat, valid = stat_ratio(total, norm, stats, None)
        # The sum reads every row: one non-finite row invalidates every candidate of the member.
        return hat, valid & (stats[:, :, L.NONFINITE] == 0).all(dim=1, keepdim=True)


@register("ntk", title="NTK")
@dataclass(frozen=True)
class NTK(TraceScheme):
    """NTK weighting, Wang, Yu & Perdikaris 2022 (J. Comput. Phys. 449, 110768), Algorithm 1.

    ``hat_j = sum_k Tr(K_kk) / Tr(K_jj)`` with ``Tr(K_jj) = sum_i ||grad_theta r_j(x_i)||^2`` over the term's
    points (:func:`fastpinn.ntk.term_traces`); every term is adaptive (no reference term). ``per_point=True``
    uses the per-point mean ``Tr(K_jj) / N_j`` instead (documented option: it removes the dependence on the
    number of points per term). ``beta = 0`` (default) sets the weights to the candidates, as in the paper;
    ``beta > 0`` smooths them with the shared EMA. ``subsample``: points per term for the traces (``None``:
    all; cost in :mod:`fastpinn.ntk`). A term with a zero or non-finite trace keeps its weight; a
    non-finite trace makes every candidate of the member invalid (the sum reads all terms).
    """

    beta: float = ema_beta(0.0, shown=False)
    bias_correction: bool = bias_correction_flag()
    tau: int = update_interval()
    per_point: bool = param(False, symbol="per point", help="per-point mean trace Tr(K_jj)/N_j")
    subsample: Optional[int] = param(128, kind="int", optional=True, minimum=1,
                                     help="points per term for the traces ('none': all)")
    weight_min: Optional[float] = weight_bound("min")
    weight_max: Optional[float] = weight_bound("max")
    weight_warmup: int = weight_warmup()

    def candidate_from_traces(self, traces: Tensor) -> tuple[Tensor, Tensor]:
        total = traces.sum(dim=1)
        hat = total.unsqueeze(1) / traces
        valid = (torch.isfinite(traces) & (traces > 0)) & torch.isfinite(traces).all(dim=1, keepdim=True)
        return hat, valid
