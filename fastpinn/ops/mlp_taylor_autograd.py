"""The autograd formula and the fake (meta) implementation of the Taylor-mode MLP op
(``fastpinn::mlp_taylor_forward``), registered from :func:`fastpinn.ops.fake.register_fakes` when the compiled
library loads. Like :mod:`fastpinn.ops.mlp_jet_autograd` it sits below the op's Python entry
(:mod:`fastpinn.ops.mlp_taylor`) and the loader: it imports neither.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["register_taylor_autograd", "mlp_taylor_forward_fake", "mlp_taylor_backward_fake"]


def mlp_taylor_forward_fake(theta: Tensor, x: Tensor, scale: Tensor, shift: Tensor, sizes: list[int],
                            dirs: list[int], order: int, activation: str) -> Tensor:
    """``fields[S, 1 + len(dirs) * order, N, sizes[-1]]`` of theta's dtype and device."""
    torch._check(theta.dim() == 2, lambda: f"fastpinn::mlp_taylor_forward: theta must be [S, P], got {tuple(theta.shape)}")
    torch._check(x.dim() in (2, 3),
                 lambda: f"fastpinn::mlp_taylor_forward: x must be [N, d] or [S, N, d], got {tuple(x.shape)}")
    return theta.new_empty((theta.shape[0], 1 + len(dirs) * order, x.shape[-2], sizes[-1]))


def mlp_taylor_backward_fake(grad_fields: Tensor, theta: Tensor, x: Tensor, scale: Tensor, shift: Tensor,
                             sizes: list[int], dirs: list[int], order: int, activation: str,
                             x_grad: bool) -> tuple[Tensor, Tensor]:
    """``(grad_theta[S, P], grad_x)`` with grad_x of x's shape if ``x_grad`` else ``[0]``."""
    return theta.new_empty(theta.shape), (x.new_empty(x.shape) if x_grad else theta.new_empty((0,)))


def _setup_context(ctx, inputs, output) -> None:  # noqa: ANN001 - torch.library's signature
    theta, x, scale, shift, sizes, dirs, order, activation = inputs
    ctx.save_for_backward(theta, x, scale, shift)
    ctx.plan = (sizes, dirs, order, activation)
    ctx.x_grad = bool(ctx.needs_input_grad[1])


def _backward(ctx, grad_fields: Optional[Tensor]):  # noqa: ANN001, ANN202
    theta, x, scale, shift = ctx.saved_tensors
    grad_theta, grad_x = torch.ops.fastpinn.mlp_taylor_backward(grad_fields, theta, x, scale, shift, *ctx.plan,
                                                                ctx.x_grad)
    # scale / shift are the network's constant input map (buffers): no gradient.
    return grad_theta, (grad_x if ctx.x_grad else None), None, None, None, None, None, None


def _no_double_backward(ctx, grad_theta: Tensor, grad_x: Tensor):  # noqa: ANN001, ANN202
    raise RuntimeError(
        "fastpinn::mlp_taylor_forward is differentiable once: the gradient of its backward (double backward, "
        "e.g. a gradient penalty or a Hessian wrt theta) is not implemented; use derivative_method 'autograd' for that"
    )


def _backward_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    pass


def register_taylor_autograd() -> None:
    """Attach the autograd formulas of the Taylor-mode op (called once by ``fake.register_fakes``)."""
    torch.library.register_autograd("fastpinn::mlp_taylor_forward", _backward, setup_context=_setup_context)
    torch.library.register_autograd("fastpinn::mlp_taylor_backward", _no_double_backward,
                                    setup_context=_backward_setup)
