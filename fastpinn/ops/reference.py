"""Pure-PyTorch twins of the compiled ops: the definition of what they compute, and the test oracle.

Both functions work on any device and for float32 and float64, with no host synchronisation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import layout as L

__all__ = ["grad_stats_ref", "ema_update_ref", "check_p"]


def check_p(p: float) -> float:
    """Validate an L^p exponent: a real number ``p >= 1`` or ``math.inf``."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"p must be a number >= 1 or math.inf, got {p!r}") from None
    if math.isnan(p) or p < 1.0:
        raise ValueError(f"p must be a number >= 1 or math.inf, got {p!r}")
    return p


def grad_stats_ref(G: Tensor, p: float = 2.0) -> Tensor:
    """Per-row statistics of per-term gradients.

    Args:
        G: ``[..., P]`` (typically ``[S, K, P]`` or ``[K, P]``), float32 or float64, ``P >= 1``.
        p: exponent of the ``NORM_P`` column, ``p >= 1`` or ``math.inf``.

    Returns:
        ``stats[..., N_STATS]`` in ``G``'s dtype; columns as in :mod:`fastpinn.ops.layout`.
    """
    p = check_p(p)
    if G.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"G must be float32 or float64, got {G.dtype}")
    if G.dim() < 1 or G.shape[-1] < 1:
        raise ValueError(f"G must have a last dimension P >= 1, got shape {tuple(G.shape)}")
    n = G.shape[-1]
    a = G.abs()
    sum_abs = a.sum(-1)
    sum_sq = (G * G).sum(-1)
    max_abs = a.amax(-1)
    total = G.sum(-1)
    m2 = ((G - (total / n).unsqueeze(-1)) ** 2).sum(-1)
    if p == 1.0:
        norm_p = sum_abs
    elif p == 2.0:
        norm_p = sum_sq.sqrt()
    elif math.isinf(p):
        norm_p = max_abs
    else:
        # Scale by the max so |g|^p neither overflows nor underflows for large p.
        safe_max = torch.where(max_abs > 0, max_abs, torch.ones_like(max_abs))
        scaled = (a / safe_max.unsqueeze(-1)).pow(p).sum(-1).pow(1.0 / p)
        norm_p = torch.where(max_abs > 0, max_abs * scaled, torch.zeros_like(max_abs))
    nonfinite = (~torch.isfinite(G)).sum(-1).to(G.dtype)
    return torch.stack([sum_abs, sum_sq, max_abs, total, norm_p, m2, nonfinite], dim=-1)


def ema_update_ref(
    stats: Tensor,
    lam: Tensor,
    lam_applied: Tensor,
    n_updates: Tensor,
    skipped: Tensor,
    adaptive: Tensor,
    scheme: int,
    reference: int,
    beta: float,
    bias_correction: bool,
    ma_form: int,
    numel: int,
) -> None:
    """One EMA update of the loss weights, in place.

    For every member ``s`` and adaptive term ``j`` (``adaptive[j]`` and ``j != reference``), with ``r`` the
    reference term, the candidate weight is

    * MA (``scheme=SCHEME_MA``): ``max|g_r| / (c_j * mean|g_j|)`` with ``c_j = lam_applied[s, j]``
      for ``ma_form=MA_FORM_PAPER`` (eq. 15) and ``c_j = 1`` for ``MA_FORM_WANG``;
    * ID: ``std(g_r) / std(g_j)``, sample standard deviation (Bessel-corrected);
    * DN: ``||g_r||_p / ||g_j||_p`` (the ``NORM_P`` column).

    and ``lam <- beta * lam + (1 - beta) * candidate``; the applied weight is ``lam / (1 - beta^n)``
    with bias correction, ``lam`` without, where ``n`` counts updates including this one. A term whose
    statistic (or the reference's) is zero or non-finite keeps both weights and ``skipped`` counts it.
    ``n_updates`` always advances.

    Shapes: ``stats[S, K, N_STATS]``, ``lam``, ``lam_applied`` ``[S, K]`` (float, mutated),
    ``n_updates[S]`` int64 (mutated), ``skipped[S, K]`` int64 (mutated), ``adaptive[K]`` bool.
    ``numel`` is ``P``, the length of each gradient row.
    """
    n_terms = stats.shape[-2]
    if scheme == L.SCHEME_MA:
        num = stats[:, reference, L.MAX_ABS]
        den = stats[:, :, L.SUM_ABS] / numel
        if ma_form == L.MA_FORM_PAPER:
            den = den * lam_applied
    elif scheme == L.SCHEME_ID:
        # numel == 1 divides by zero -> non-finite -> skipped, which is the honest outcome.
        std = (stats[:, :, L.M2] / (numel - 1)).sqrt() if numel > 1 else torch.full_like(stats[:, :, L.M2], math.nan)
        num = std[:, reference]
        den = std
    elif scheme == L.SCHEME_DN:
        num = stats[:, reference, L.NORM_P]
        den = stats[:, :, L.NORM_P]
    else:
        raise ValueError(f"scheme must be one of {L.SCHEME_MA}, {L.SCHEME_ID}, {L.SCHEME_DN}, got {scheme}")

    hat = num.unsqueeze(1) / den
    nonfinite = stats[:, :, L.NONFINITE]
    is_ref = torch.arange(n_terms, device=stats.device) == reference
    target = adaptive.to(torch.bool) & ~is_ref  # [K]
    valid = (
        target.unsqueeze(0)
        & (nonfinite == 0)
        & (nonfinite[:, reference] == 0).unsqueeze(1)
        & torch.isfinite(num).unsqueeze(1)
        & (num > 0).unsqueeze(1)
        & torch.isfinite(den)
        & (den > 0)
        & torch.isfinite(hat)
    )
    n_new = n_updates + 1
    new_lam = torch.where(valid, beta * lam + (1.0 - beta) * hat.to(lam.dtype), lam)
    if bias_correction:
        correction = 1.0 - torch.pow(beta, n_new.to(torch.float64))
        applied = new_lam / correction.to(lam.dtype).unsqueeze(1)
    else:
        applied = new_lam
    new_applied = torch.where(valid, applied, lam_applied)
    skipped.add_((target.unsqueeze(0) & ~valid).to(skipped.dtype))
    lam.copy_(new_lam)
    lam_applied.copy_(new_applied)
    n_updates.copy_(n_new)
