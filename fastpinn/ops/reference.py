"""Pure-PyTorch twins of the compiled ops: the definition of what they compute, and the test oracle.

Both functions work on any device and for float32 and float64, with no host synchronisation.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from . import layout as L

__all__ = ["grad_stats_ref", "grad_gram_ref", "ema_update_ref", "check_p"]


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


def grad_gram_ref(G: Tensor) -> Tensor:
    """The Gram matrix of the gradient rows: ``gram[..., i, j] = sum_p G[..., i, p] G[..., j, p]``.

    Args:
        G: ``[..., K, P]`` (typically ``[S, K, P]``), float32 or float64, ``P >= 1``.

    Returns:
        ``gram[..., K, K]`` in float64 whatever ``G``'s dtype: the aggregators solve their small problems in
        float64, and a product of two float32 numbers is exact in float64, so only the sums round.
    """
    if G.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"G must be float32 or float64, got {G.dtype}")
    if G.dim() < 2 or G.shape[-1] < 1:
        raise ValueError(f"G must have shape [..., K, P] with P >= 1, got shape {tuple(G.shape)}")
    G64 = G.to(torch.float64)
    return G64 @ G64.transpose(-1, -2)


def ema_update_ref(
    hat: Tensor,
    valid: Tensor,
    target: Tensor,
    active: Optional[Tensor],
    lam: Tensor,
    lam_applied: Tensor,
    n_updates: Tensor,
    skipped: Tensor,
    beta: float,
    bias_correction: bool,
) -> None:
    """One scheme-free EMA update of the loss weights, in place.

    For every member ``s`` and target term ``j`` (``target[j]``: adaptive and not the reference), with the
    candidate ``hat[s, j]`` that the scheme formed from its inputs:

    * if ``valid[s, j]`` and ``hat[s, j]`` is finite: ``lam <- beta * lam + (1 - beta) * hat`` and the
      applied weight is ``lam / (1 - beta^c)`` with bias correction, ``lam`` without, where ``c`` is the
      term's own number of EMA updates: a term skipped before is corrected by its own count, not the call
      count. Each call updates or skips every target term, so ``c = n_updates - skipped`` after the call;
    * otherwise both weights are kept and ``skipped[s, j] += 1``.

    ``n_updates[s]`` counts calls. ``active``: ``None`` or a 0-dim bool tensor; when False
    nothing changes. All decisions stay on the device (``torch.where``), so there is no host sync.

    Shapes: ``hat[S, K]`` float, ``valid[S, K]`` bool, ``target[K]`` bool, ``lam``, ``lam_applied`` ``[S, K]``
    (hat's dtype, mutated), ``skipped[S, K]`` int64 (mutated), ``n_updates[S]`` int64 (mutated).
    """
    on = torch.ones((), dtype=torch.bool, device=hat.device) if active is None else active.to(torch.bool)
    ok = target.to(torch.bool).unsqueeze(0) & valid & torch.isfinite(hat) & on
    miss = target.to(torch.bool).unsqueeze(0) & ~(valid & torch.isfinite(hat)) & on
    new_skipped = skipped + miss.to(skipped.dtype)
    new_n = n_updates + on.to(n_updates.dtype)
    new_count = new_n.unsqueeze(1) - new_skipped
    new_lam = torch.where(ok, beta * lam + (1.0 - beta) * hat.to(lam.dtype), lam)
    if bias_correction:
        correction = 1.0 - torch.pow(beta, new_count.to(torch.float64))
        applied = new_lam / correction.to(lam.dtype)
    else:
        applied = new_lam
    lam_applied.copy_(torch.where(ok, applied, lam_applied))
    lam.copy_(new_lam)
    skipped.copy_(new_skipped)
    n_updates.copy_(new_n)
