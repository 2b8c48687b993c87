"""The fused tanh-MLP jet op: value, first and second input derivatives of a :class:`~fastpinn.network.MLP`
in one pass over tiles of points, with its backward to ``theta`` (and ``x``).

``torch.ops.fastpinn.mlp_jet_forward`` (C++ CPU kernel, csrc/mlp_jet*.{h,cpp}; Triton CUDA kernel,
fastpinn/kernels/mlp_jet.py, registered on CUDA machines) computes exactly what
:func:`fastpinn.derivatives._jet_mlp` computes -- the pure-PyTorch twin and the test oracle -- but keeps a
tile of points' jets of every layer in cache instead of writing ``[channels, N, width]`` activations to
memory per layer. Its autograd formula calls ``torch.ops.fastpinn.mlp_jet_backward``, which sweeps back
through each tile's forward state: either stored by the forward (``store=True``, a "tape" of every layer's
jets) or recomputed tile by tile (``store=False``: the forward saves only its inputs). Which is faster was
measured (bench/bench_fused_mlp.py, "store vs recompute"); :data:`STORE` is the choice.

Differentiability: first order. ``grad`` of any loss built from the fields wrt ``theta`` and ``x`` works;
``scale``/``shift`` (the network's input-scaling buffers) get no gradient; a second backward (e.g.
``create_graph=True`` then differentiating the gradient again) raises a ``RuntimeError`` saying so.
The Trainer needs first-order gradients only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import torch
from torch import Tensor

if TYPE_CHECKING:  # imported lazily at run time: fastpinn.derivatives imports this module's users
    from fastpinn.network import MLP

__all__ = ["mlp_jet", "fused_mlp", "register_autograd", "tape_numel", "TILE", "STORE"]

TILE = 32  # points per tile in the C++ kernel (csrc/mlp_jet.h kTile); tests use it to probe tile edges
# Keep the forward state for the backward (True) or recompute it per tile (False). Measured on the Burgers
# PDE term (bench_fused_mlp.py, 2-core AMD EPYC, 1 thread, AVX2 kernels): forward + backward 13.9 ms
# recomputing vs 18.6 ms storing the 58 MB tape (41-66 ms without fastpinn.malloc's retention, from page
# faults); even the backward that reads the tape instead of recomputing is slower (12.1 vs 9.9 ms): the tape
# streams through DRAM, the recompute stays in cache. The store path stays as a tested option so that the
# benchmark re-measures the choice.
STORE = False


def tape_numel(n_points: int, sizes: Sequence[int], n_dirs: int, n_pairs: int) -> int:
    """Elements of one member's tape: per tile the scaled points, every layer's jet [width, C, TILE] and, for
    hidden layers, the activation jet and tanh' (csrc/mlp_jet.h ``tape_elems``)."""
    tiles = -(-n_points // TILE)
    ct = (1 + n_dirs + n_pairs) * TILE
    per_tile = sizes[0] * TILE
    for k in range(len(sizes) - 1):
        per_tile += sizes[k + 1] * (2 * ct + TILE if k + 2 < len(sizes) else ct)
    return tiles * per_tile


def _flat_pairs(pairs: Sequence[tuple[int, int]]) -> list[int]:
    return [p for pair in pairs for p in pair]


def mlp_jet(
    theta: Tensor,
    x: Tensor,
    scale: Tensor,
    shift: Tensor,
    sizes: Sequence[int],
    dirs: Sequence[int],
    pairs: Sequence[tuple[int, int]],
    first_out: Sequence[int],
    store: Optional[bool] = None,
) -> Tensor:
    """Fused jets of a tanh MLP at the points.

    Args:
        theta: ``[S, P]`` parameters (layout of :class:`~fastpinn.network.MLP`).
        x: ``[N, d]`` points shared by the members, or ``[S, N, d]``.
        scale, shift: ``[d]``; the network sees ``x * scale + shift``.
        sizes: ``[d, hidden..., out]`` layer widths.
        dirs: coordinates whose tangents are propagated; pairs: second derivatives as positions into
            ``dirs``; first_out: positions into ``dirs`` of the returned first derivatives (as
            ``derivatives._JetPlan`` computes them).
        store: keep every tile's forward state for the backward (memory: :func:`tape_numel` per member)
            instead of recomputing it; ``None``: :data:`STORE` when a gradient will be needed, else no.

    Returns:
        ``fields[S, 1 + len(first_out) + len(pairs), N, out]``: the value, the first derivatives in
        ``first_out`` order, the second derivatives in ``pairs`` order.

    Raises:
        NotImplementedError: the tensors are neither on the CPU nor on CUDA with Triton installed, or the
            compiled extension (which defines the op) is not built -- so that ``fastest_method`` skips the
            method; the message says why.
    """
    if theta.device.type == "cuda":
        try:
            import triton  # noqa: F401 - the CUDA kernels are Triton (fastpinn/kernels/mlp_jet.py)
        except ImportError as exc:
            raise NotImplementedError("derivative method 'fused' on CUDA needs triton installed") from exc
        store = False  # the Triton backward recomputes; its forward never returns a tape
    elif theta.device.type != "cpu":
        raise NotImplementedError(f"fastpinn::mlp_jet_forward has CPU (C++) and CUDA (Triton) kernels, got {theta.device}")
    from . import _ext

    try:
        _ext.load()
    except RuntimeError as exc:
        raise NotImplementedError(f"derivative method 'fused' needs the compiled extension: {exc}") from exc
    if store is None:
        store = STORE and torch.is_grad_enabled() and (theta.requires_grad or x.requires_grad)
    fields, _tape = torch.ops.fastpinn.mlp_jet_forward(
        theta, x, scale, shift, list(sizes), list(dirs), _flat_pairs(pairs), list(first_out), bool(store)
    )
    return fields


def fused_mlp(net: "MLP", theta: Tensor, x: Tensor, wanted: Sequence[tuple[int, ...]]) -> dict[tuple[int, ...], Tensor]:
    """:func:`fastpinn.derivatives._jet_mlp`'s contract through the fused op: ``wanted`` derivative indices
    -> tensors ``[.., N, out]`` (``[S, N, out]`` for ``theta[S, P]``; any leading shape of ``x`` for a
    single network). Orders <= 2 (``NotImplementedError`` beyond, as ``"jet"``)."""
    from fastpinn.derivatives import _JetPlan

    plan = _JetPlan(wanted)
    ensemble = theta.dim() == 2
    lead = x.shape[:-1]
    th = theta if ensemble else theta.unsqueeze(0)
    points = x if ensemble else x.reshape(-1, x.shape[-1])
    sizes = [net.in_dim] + [net.width] * (net.depth - 1) + [net.out_dim]
    fields = mlp_jet(th, points, net.input_scale, net.input_shift, sizes, plan.dirs, plan.pairs, plan.first_out)
    values: dict[tuple[int, ...], Tensor] = {(): fields[:, 0]}
    for k, index in enumerate(plan.first):
        values[index] = fields[:, 1 + k]
    for k, index in enumerate(plan.second):
        values[index] = fields[:, 1 + len(plan.first) + k]
    if not ensemble:
        values = {index: v[0].reshape(*lead, v.shape[-1]) for index, v in values.items()}
    return values


# ---------------------------------------------------------------------------------------------- autograd


def _setup_context(ctx, inputs, output) -> None:  # noqa: ANN001 - torch.library's signature
    theta, x, scale, shift, sizes, dirs, pairs, first_out, _store = inputs
    _fields, tape = output
    ctx.mark_non_differentiable(tape)
    ctx.save_for_backward(theta, x, scale, shift, tape)
    ctx.plan = (sizes, dirs, pairs, first_out)
    ctx.x_grad = bool(ctx.needs_input_grad[1])


def _backward(ctx, grad_fields: Tensor, _grad_tape: Optional[Tensor]):  # noqa: ANN001, ANN202
    theta, x, scale, shift, tape = ctx.saved_tensors
    if grad_fields is None:  # only the tape was used downstream: nothing flows back
        return (None,) * 9
    grad_theta, grad_x = torch.ops.fastpinn.mlp_jet_backward(grad_fields, theta, x, scale, shift, tape, *ctx.plan,
                                                             ctx.x_grad)
    # scale / shift are the network's constant input map (buffers): no gradient.
    return grad_theta, (grad_x if ctx.x_grad else None), None, None, None, None, None, None, None


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
