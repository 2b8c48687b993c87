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
from .mlp_jet_autograd import register_autograd, tape_numel
from .mlp_taylor_autograd import mlp_taylor_backward_fake, mlp_taylor_forward_fake, register_taylor_autograd

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


def _grad_gram_fake(G: Tensor) -> Tensor:
    """``G[S, K, P]`` -> a new ``[S, K, K]`` float64 tensor on ``G``'s device."""
    torch._check(G.dim() == 3, lambda: f"fastpinn::grad_gram: G must be 3-D [S, K, P], got shape {tuple(G.shape)}")
    return G.new_empty((G.shape[0], G.shape[1], G.shape[1]), dtype=torch.float64)


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


def _mlp_jet_forward_fake(
    theta: Tensor, x: Tensor, scale: Tensor, shift: Tensor, sizes: list[int], dirs: list[int], pairs: list[int],
    first_out: list[int], store: bool, activation: str = "tanh",
) -> tuple[Tensor, Tensor]:
    """``fields[S, 1 + len(first_out) + len(pairs) / 2, N, sizes[-1]]`` of theta's dtype and device, and the
    tape (``[S * tiles * tape_numel]`` with ``store``, else ``[0]``)."""
    torch._check(theta.dim() == 2, lambda: f"fastpinn::mlp_jet_forward: theta must be [S, P], got {tuple(theta.shape)}")
    torch._check(x.dim() in (2, 3), lambda: f"fastpinn::mlp_jet_forward: x must be [N, d] or [S, N, d], got {tuple(x.shape)}")
    n = x.shape[-2]
    fields = theta.new_empty((theta.shape[0], 1 + len(first_out) + len(pairs) // 2, n, sizes[-1]))
    tape = theta.new_empty((theta.shape[0] * tape_numel(n, sizes, len(dirs), len(pairs) // 2) if store else 0,))
    return fields, tape


def _mlp_jet_backward_fake(
    grad_fields: Tensor, theta: Tensor, x: Tensor, scale: Tensor, shift: Tensor, tape: Tensor, sizes: list[int],
    dirs: list[int], pairs: list[int], first_out: list[int], x_grad: bool, activation: str = "tanh",
) -> tuple[Tensor, Tensor]:
    """``(grad_theta[S, P], grad_x)`` with grad_x of x's shape if ``x_grad`` else ``[0]``."""
    return theta.new_empty(theta.shape), (x.new_empty(x.shape) if x_grad else theta.new_empty((0,)))


def _mlp_jet_backward_batched_fake(
    grad_fields: Tensor, theta: Tensor, x: Tensor, scale: Tensor, shift: Tensor, tape: Tensor, sizes: list[int],
    dirs: list[int], pairs: list[int], first_out: list[int], activation: str = "tanh",
) -> Tensor:
    """``grad_theta[K, S, P]`` for ``grad_fields[K, S, C, N, out]``."""
    torch._check(grad_fields.dim() == 5, lambda: "fastpinn::mlp_jet_backward_batched: grad_fields must be 5-D")
    return theta.new_empty((grad_fields.shape[0], *theta.shape))


def register_fakes() -> None:
    """Register the fake implementations of the compiled ops (once), and the autograd formula of
    ``fastpinn::mlp_jet_forward`` (:func:`fastpinn.ops.mlp_jet_autograd.register_autograd`), so that importing
    ``fastpinn._C`` by itself leaves every op usable.

    Requires the schemas, i.e. ``fastpinn._C`` imported.
    """
    global _registered
    with _lock:
        if _registered:
            return
        # Called from this module: torch checks it against the C++ set_python_module("fastpinn.ops.fake").
        torch.library.register_fake("fastpinn::grad_stats", _grad_stats_fake)
        torch.library.register_fake("fastpinn::ema_update", _ema_update_fake)
        if hasattr(torch.ops.fastpinn, "grad_gram"):  # a library built before the op existed lacks it
            torch.library.register_fake("fastpinn::grad_gram", _grad_gram_fake)
        torch.library.register_fake("fastpinn::mlp_jet_forward", _mlp_jet_forward_fake)
        torch.library.register_fake("fastpinn::mlp_jet_backward", _mlp_jet_backward_fake)
        if hasattr(torch.ops.fastpinn, "mlp_jet_backward_batched"):  # a library built before the op lacks it
            torch.library.register_fake("fastpinn::mlp_jet_backward_batched", _mlp_jet_backward_batched_fake)
        register_autograd()
        if hasattr(torch.ops.fastpinn, "mlp_taylor_forward"):  # a library built before the op existed lacks it
            torch.library.register_fake("fastpinn::mlp_taylor_forward", mlp_taylor_forward_fake)
            torch.library.register_fake("fastpinn::mlp_taylor_backward", mlp_taylor_backward_fake)
            register_taylor_autograd()
        _registered = True

