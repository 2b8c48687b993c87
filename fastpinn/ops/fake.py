"""Fake (meta) implementations of the compiled ops, so that ``torch.compile`` and ``opcheck`` can trace them.

The schemas come from the C++ library, so the fakes can only be registered once ``fastpinn._C`` is loaded:
the module's initialisation and :func:`fastpinn.ops._ext.load` call :func:`register_fakes` (it runs once).
The C++ library names this module with ``m.set_python_module("fastpinn.ops.fake")``, which torch checks
against the module that registers the fakes.
"""

from __future__ import annotations

import threading
from typing import Optional

import torch
from torch import Tensor

from .layout import N_STATS

__all__ = ["register_fakes"]

_lock = threading.Lock()
_registered = False


def _grad_stats_fake(G: Tensor, p: float) -> Tensor:
    """``G[S, K, P]`` -> a new contiguous ``[S, K, N_STATS]`` tensor of ``G``'s dtype and device."""
    torch._check(G.dim() == 3, lambda: f"fastpinn::grad_stats: G must be 3-D [S, K, P], got shape {tuple(G.shape)}")
    torch._check(
        G.dtype in (torch.float32, torch.float64),
        lambda: f"fastpinn::grad_stats: G must be float32 or float64, got {G.dtype}",
    )
    return G.new_empty((G.shape[0], G.shape[1], N_STATS))


def _ema_update_fake(
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
    """In place on ``lam``, ``lam_applied``, ``n_updates``, ``skipped``; returns nothing."""
    return None


def register_fakes() -> None:
    """Register the fake implementations of ``fastpinn::grad_stats`` and ``fastpinn::ema_update`` (once).

    Requires the schemas, i.e. ``fastpinn._C`` imported.
    """
    global _registered
    with _lock:
        if _registered:
            return
        # Called from this module: torch checks it against the C++ set_python_module("fastpinn.ops.fake").
        torch.library.register_fake("fastpinn::grad_stats", _grad_stats_fake)
        torch.library.register_fake("fastpinn::ema_update", _ema_update_fake)
        _registered = True

