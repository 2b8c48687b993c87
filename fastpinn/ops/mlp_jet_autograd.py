"""The autograd formula of the fused MLP jet op (``fastpinn::mlp_jet_forward``) and the size of its tape.

Registered together with the ops' fake implementations (:func:`fastpinn.ops.fake.register_fakes`) when the
compiled library loads; the op's Python entry is :func:`fastpinn.ops.mlp_jet.mlp_jet`. This module sits below
both: it imports neither the loader (:mod:`fastpinn.ops._ext`) nor the entry.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

__all__ = ["register_autograd", "tape_numel", "TILE"]

TILE = 32  # points per tile in the C++ kernel (csrc/mlp_jet.h kTile); tests use it to probe tile edges


def tape_numel(n_points: int, sizes: Sequence[int], n_dirs: int, n_pairs: int) -> int:
    """Elements of one member's tape: per tile the scaled points, every layer's jet [width, C, TILE] and, for
    hidden layers, the activation jet and tanh' (csrc/mlp_jet.h ``tape_elems``)."""
    tiles = -(-n_points // TILE)
    ct = (1 + n_dirs + n_pairs) * TILE
    per_tile = sizes[0] * TILE
    for k in range(len(sizes) - 1):
        per_tile += sizes[k + 1] * (2 * ct + TILE if k + 2 < len(sizes) else ct)
    return tiles * per_tile


def _setup_context(ctx, inputs, output) -> None:  # noqa: ANN001 - torch.library's signature
    theta, x, scale, shift, sizes, dirs, pairs, first_out, _store = inputs[:9]
    activation = inputs[9] if len(inputs) > 9 else "tanh"  # the schema's default
    _fields, tape = output
    ctx.mark_non_differentiable(tape)
    ctx.save_for_backward(theta, x, scale, shift, tape)
    ctx.plan = (sizes, dirs, pairs, first_out)
    ctx.activation = activation
    ctx.n_inputs = len(inputs)
    ctx.x_grad = bool(ctx.needs_input_grad[1])


def _backward(ctx, grad_fields: Tensor, _grad_tape: Optional[Tensor]):  # noqa: ANN001, ANN202
    theta, x, scale, shift, tape = ctx.saved_tensors
    if grad_fields is None:  # only the tape was used downstream: nothing flows back
        return (None,) * ctx.n_inputs
    grad_theta, grad_x = torch.ops.fastpinn.mlp_jet_backward(grad_fields, theta, x, scale, shift, tape, *ctx.plan,
                                                             ctx.x_grad, ctx.activation)
    # scale / shift are the network's constant input map (buffers): no gradient.
    return (grad_theta, (grad_x if ctx.x_grad else None)) + (None,) * (ctx.n_inputs - 2)


def _no_double_backward(ctx, grad_theta: Tensor, grad_x: Tensor):  # noqa: ANN001, ANN202
    raise RuntimeError(
        "fastpinn::mlp_jet_forward is differentiable once: the gradient of its backward "
        "(double backward, e.g. a gradient penalty or a Hessian wrt theta) is not implemented; "
        "use derivative_method 'jet' for that"
    )


def _backward_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    pass


def register_autograd() -> None:
    """Attach the autograd formulas, and on a CUDA machine with Triton the Triton kernels as the ops' CUDA
    implementations (called once with the fake implementations, see ``fake.register_fakes``)."""
    torch.library.register_autograd("fastpinn::mlp_jet_forward", _backward, setup_context=_setup_context)
    torch.library.register_autograd("fastpinn::mlp_jet_backward", _no_double_backward, setup_context=_backward_setup)
    if not torch.cuda.is_available():
        return  # no import of triton on CPU-only machines (the interpreter tests call the kernels directly)
    try:
        from fastpinn.kernels.mlp_jet import mlp_jet_backward_triton, mlp_jet_forward_triton
    except ImportError:
        return
    torch.library.register_kernel("fastpinn::mlp_jet_forward", "cuda", mlp_jet_forward_triton)
    torch.library.register_kernel("fastpinn::mlp_jet_backward", "cuda", mlp_jet_backward_triton)
