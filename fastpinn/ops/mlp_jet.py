"""The fused MLP jet op (tanh, sin, silu or softplus hidden layers): value, first and second input derivatives of a
:class:`~fastpinn.network.MLP` in one pass over tiles of points, with its backward to ``theta`` (and ``x``).

``torch.ops.fastpinn.mlp_jet_forward`` (C++ CPU kernel, csrc/mlp_jet*.{h,cpp}; Triton CUDA kernel,
fastpinn/kernels/mlp_jet.py, registered on CUDA machines) computes exactly what
``fastpinn.derivatives.jet_mlp`` computes -- the pure-PyTorch twin and the test oracle -- but keeps a
tile of points' jets of every layer in cache instead of writing ``[channels, N, width]`` activations to
memory per layer. Its autograd formula calls ``torch.ops.fastpinn.mlp_jet_backward``, which sweeps back
through each tile's forward state: either stored by the forward (``store=True``, a "tape" of every layer's
jets) or recomputed tile by tile (``store=False``: the forward saves only its inputs). Which is faster was
measured (bench/bench_fused_mlp.py, "store vs recompute"); :data:`STORE` is the choice.

Differentiability: first order. ``grad`` of any loss built from the fields wrt ``theta`` and ``x`` works;
``scale``/``shift`` (the network's input-scaling buffers) get no gradient; a second backward (e.g.
``create_graph=True`` then differentiating the gradient again) raises a ``RuntimeError`` saying so.
The Trainer needs first-order gradients only.

The kernels know the activations of :data:`~fastpinn.ops.activations.JET_ACTIVATIONS`, taken by name (the Triton
CUDA kernel tanh only), and the box scaling of the inputs: ``fastpinn.derivatives`` offers the ``"fused"`` method
only for such an :class:`~fastpinn.network.MLP` without input/output transforms (``"jet"`` does the rest).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from . import cotangents
from .activations import JET_ACTIVATIONS, check_activation
from .mlp_jet_autograd import TILE, register_autograd, tape_numel

__all__ = ["mlp_jet", "mlp_jet_leaves", "LeafJet", "JetPlan", "DerivIndex", "register_autograd", "tape_numel", "TILE",
           "STORE", "JET_ACTIVATIONS"]

# Keep the forward state for the backward (True) or recompute it per tile (False). Measured on the Burgers
# PDE term (bench_fused_mlp.py, 2-core AMD EPYC, 1 thread, AVX2 kernels): forward + backward 13.9 ms
# recomputing vs 18.6 ms storing the 58 MB tape (41-66 ms without fastpinn.malloc's retention, from page
# faults); even the backward that reads the tape instead of recomputing is slower (12.1 vs 9.9 ms): the tape
# streams through DRAM, the recompute stays in cache. The store path stays as a tested option so that the
# benchmark re-measures the choice.
STORE = False


#: A derivative as the sorted tuple of the indices of the coordinates it differentiates by: ``()`` is the value,
#: ``(1,)`` is d/dx_1, ``(0, 1)`` is d2/dx_0 dx_1. Sorting makes mixed derivatives order-free.
DerivIndex = tuple[int, ...]


class JetPlan:
    """Which tangent directions and second-derivative channels one set of derivative requests needs (the
    plan that both the fused op and its pure-PyTorch twin, ``fastpinn.derivatives.jet_mlp``, follow).

    Args:
        wanted: derivative indices, each a tuple of input coordinates (``()`` the value, ``(0,)`` d/dx0,
            ``(0, 1)`` d2/dx0dx1); orders above 2 raise ``NotImplementedError``.

    Attributes:
        first, second: the requested first- and second-order indices, sorted.
        dirs: coordinates whose first-derivative tangents are propagated (the union of the first-order
            requests and the coordinates of the second-order ones).
        pairs: the requested second derivatives as positions into ``dirs``.
        first_out: positions into ``dirs`` of the requested first derivatives.
    """

    def __init__(self, wanted: Sequence[tuple[int, ...]]) -> None:
        too_high = [w for w in wanted if len(w) > 2]
        if too_high:
            raise NotImplementedError(
                f"method 'jet' computes derivatives up to order 2; orders {sorted({len(w) for w in too_high})} were "
                "requested; use method 'func' or 'autograd'"
            )
        self.first: list[tuple[int, ...]] = sorted({w for w in wanted if len(w) == 1})
        self.second: list[tuple[int, ...]] = sorted({w for w in wanted if len(w) == 2})
        self.dirs: list[int] = sorted({c for w in self.first + self.second for c in w})
        position = {c: k for k, c in enumerate(self.dirs)}
        self.pairs: list[tuple[int, int]] = [(position[i], position[j]) for i, j in self.second]
        self.first_out: list[int] = [position[i] for (i,) in self.first]


def _flat_pairs(pairs: Sequence[tuple[int, int]]) -> list[int]:
    return [p for pair in pairs for p in pair]


def _load_extension() -> None:
    """The compiled op, or NotImplementedError (so that ``fastest_method`` skips the method, saying why)."""
    from . import _ext

    try:
        _ext.load()
    except RuntimeError as exc:
        raise NotImplementedError(f"derivative method 'fused' needs the compiled extension: {exc}") from exc


class _LeafJet(torch.autograd.Function):
    """The op's forward and backward called directly (``.default`` below the Autograd dispatch key: no Python
    default filling, no redispatch through the registered autograd formula), with the gradient handed to the
    per-layer leaves as views of the op's ``grad_theta`` -- the path of the registered formula plus
    ``torch.cat`` of the leaves (and its CatBackward), in one autograd node. The op reads ``theta``, whose
    storage the leaves share.
    Inputs: ``x, scale, shift, theta[S, P], ensemble, args, *leaves`` with ``args`` the op's remaining arguments
    and ``ensemble`` whether the leaves have a leading member dimension."""

    @staticmethod
    def forward(ctx, x, scale, shift, theta, ensemble, args, *leaves):
        with torch._C._AutoDispatchBelowAutograd():  # this node is the autograd: straight to the kernel
            fields, tape = torch.ops.fastpinn.mlp_jet_forward.default(theta, x, scale, shift, *args)
        ctx.mark_non_differentiable(tape)
        ctx.save_for_backward(theta, x, scale, shift, tape)
        ctx.args = args
        ctx.ensemble = ensemble
        ctx.leaves = leaves  # their shapes cut grad_theta into their gradients; a batch of cotangents adds to them
        return fields, tape

    @staticmethod
    def backward(ctx, grad_fields, _grad_tape):
        theta, x, scale, shift, tape = ctx.saved_tensors
        x_grad = bool(ctx.needs_input_grad[0])
        batch = cotangents.active_batch()
        if batch is not None and not x_grad and not torch.is_grad_enabled():
            # one backward for all the terms that read this evaluation, after their passes (see cotangents)
            plan, activation = ctx.args[:4], ctx.args[5]

            def single(g: Tensor) -> Tensor:
                with torch._C._AutoDispatchBelowAutograd():
                    return torch.ops.fastpinn.mlp_jet_backward.default(g, theta, x, scale, shift, tape, *plan, False,
                                                                        activation)[0]

            def batched(g: Tensor) -> Tensor:
                with torch._C._AutoDispatchBelowAutograd():
                    return torch.ops.fastpinn.mlp_jet_backward_batched.default(g, theta, x, scale, shift, tape, *plan,
                                                                                activation)

            batch.defer(ctx, grad_fields, single, batched, ctx.leaves,
                        lambda grad_theta: _leaf_grads(grad_theta, ctx.leaves, ctx.ensemble))
            return (None,) * (6 + len(ctx.leaves))
        args = (grad_fields, theta, x, scale, shift, tape, *ctx.args[:4], x_grad, ctx.args[5])
        if torch.is_grad_enabled():  # create_graph: the registered formula, whose own backward raises as before
            grad_theta, grad_x = torch.ops.fastpinn.mlp_jet_backward.default(*args)
        else:
            with torch._C._AutoDispatchBelowAutograd():
                grad_theta, grad_x = torch.ops.fastpinn.mlp_jet_backward.default(*args)
        grads = _leaf_grads(grad_theta, ctx.leaves, ctx.ensemble)
        return (grad_x if x_grad else None, None, None, None, None, None, *grads)


def _leaf_grads(grad_theta: Tensor, leaves: Sequence[Tensor], ensemble: bool) -> list[Tensor]:
    """grad_theta[S, P] -> each leaf's slice (views), as the backward of cat + reshape would give it."""
    if not ensemble:  # the same views in one C++ call (a tiny step paid ~2 us of Python per narrow and per view)
        return list(torch._C._nn.unflatten_dense_tensors(grad_theta[0], list(leaves)))
    grads, offset = [], 0
    for t in leaves:
        n = t.shape[1:].numel()
        grads.append(grad_theta.narrow(-1, offset, n).view(t.shape))
        offset += n
    return grads


class LeafJet:
    """:func:`mlp_jet_leaves` with its static arguments bound once: the layer sizes, the plan's directions,
    pairs and outputs, the activation (checked here). A trainer's term evaluates through one per step, so the
    per-call work is the op and its autograd node only (a tiny problem's step is a few hundred microseconds,
    of which re-making these lists and checks took tens).

    Call: ``(theta, leaves, x, scale, shift) -> fields[S, C, N, out]``, as :func:`mlp_jet_leaves`."""

    def __init__(self, sizes: Sequence[int], dirs: Sequence[int], pairs: Sequence[tuple[int, int]],
                 first_out: Sequence[int], activation: str = "tanh") -> None:
        self.activation = check_activation("mlp_jet", activation)
        self.sizes, self.dirs, self.pairs, self.first_out = list(sizes), list(dirs), list(pairs), list(first_out)
        static = (self.sizes, self.dirs, _flat_pairs(self.pairs), self.first_out)
        self._args = {store: (*static, store, self.activation) for store in (False, True)}  # by the op's store flag
        self._view: Optional[tuple] = None  # (theta, its storage key, its detached [S, P] view)

    def __call__(self, theta: Tensor, leaves: Sequence[Tensor], x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        ensemble = theta.dim() == 2
        if theta.device.type != "cpu" or torch.compiler.is_compiling():
            members = theta.shape[0] if ensemble else 1
            joined = torch.cat([t.reshape(members, -1) for t in leaves], dim=-1)
            return mlp_jet(joined, x, scale, shift, self.sizes, self.dirs, self.pairs, self.first_out,
                           activation=self.activation)
        _load_extension()
        store = bool(STORE and torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in leaves)))
        fields, _tape = _LeafJet.apply(x, scale, shift, self._members_view(theta), ensemble, self._args[store],
                                       *leaves)
        return fields

    def _members_view(self, theta: Tensor) -> Tensor:
        """``theta`` detached as ``[S, P]`` (a view: it follows the optimizer's in-place steps), made once per
        ``theta`` and storage."""
        key = (theta.data_ptr(), theta.shape, theta.dtype)
        cached = self._view
        if cached is None or cached[0] is not theta or cached[1] != key:
            view = theta.detach() if theta.dim() == 2 else theta.detach().unsqueeze(0)
            self._view = cached = (theta, key, view)
        return cached[2]


def mlp_jet_leaves(
    theta: Tensor,
    leaves: Sequence[Tensor],
    x: Tensor,
    scale: Tensor,
    shift: Tensor,
    sizes: Sequence[int],
    dirs: Sequence[int],
    pairs: Sequence[tuple[int, int]],
    first_out: Sequence[int],
    activation: str = "tanh",
) -> Tensor:
    """:func:`mlp_jet` (``store=None``) for parameters trained as per-layer leaves that are views of ``theta``:
    the gradient goes to ``leaves`` (``[W0, b0, W1, b1, ...]`` in layout order, ``[S, ...]``-shaped for an
    ensemble, sharing ``theta``'s storage as :meth:`fastpinn.MLP.leaves` does), without joining them into a
    flat tensor. ``theta``: ``[P]``, or ``[S, P]`` for an ensemble (only read); ``x`` as for :func:`mlp_jet` (with
    ``theta[P]``: ``[N, d]``). Returns ``fields[S, C, N, out]`` (``S = 1`` for ``theta[P]``). Falls back to
    ``mlp_jet`` of the joined leaves off the CPU and under ``torch.compile`` (which traces the registered formula).
    Evaluating the same plan repeatedly: bind it once with :class:`LeafJet`."""
    return LeafJet(sizes, dirs, pairs, first_out, activation)(theta, leaves, x, scale, shift)


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
    activation: str = "tanh",
) -> Tensor:
    """Fused jets of an MLP at the points.

    Args:
        theta: ``[S, P]`` parameters (layout of :class:`~fastpinn.network.MLP`).
        x: ``[N, d]`` points shared by the members, or ``[S, N, d]``.
        scale, shift: ``[d]``; the network sees ``x * scale + shift``.
        sizes: ``[d, hidden..., out]`` layer widths.
        dirs: coordinates whose tangents are propagated; pairs: second derivatives as positions into
            ``dirs``; first_out: positions into ``dirs`` of the returned first derivatives (as
            a :class:`JetPlan` computes them).
        store: keep every tile's forward state for the backward (memory: :func:`tape_numel` per member)
            instead of recomputing it; ``None``: :data:`STORE` when a gradient will be needed, else no.
        activation: of the hidden layers, one of :data:`JET_ACTIVATIONS` (CUDA: ``"tanh"`` only).

    Returns:
        ``fields[S, 1 + len(first_out) + len(pairs), N, out]``: the value, the first derivatives in
        ``first_out`` order, the second derivatives in ``pairs`` order.

    Raises:
        NotImplementedError: the tensors are neither on the CPU nor on CUDA with Triton installed, or the
            compiled extension (which defines the op) is not built -- so that ``fastest_method`` skips the
            method; the message says why.
    """
    check_activation("mlp_jet", activation)
    if theta.device.type == "cuda":
        if activation != "tanh":
            raise NotImplementedError(f"derivative method 'fused' on CUDA is tanh-only, got {activation!r}")
        try:
            import triton  # noqa: F401 - the CUDA kernels are Triton (fastpinn/kernels/mlp_jet.py)
        except ImportError as exc:
            raise NotImplementedError("derivative method 'fused' on CUDA needs triton installed") from exc
        store = False  # the Triton backward recomputes; its forward never returns a tape
    elif theta.device.type != "cpu":
        raise NotImplementedError(f"fastpinn::mlp_jet_forward has CPU (C++) and CUDA (Triton) kernels, got {theta.device}")
    _load_extension()
    if store is None:
        store = STORE and torch.is_grad_enabled() and (theta.requires_grad or x.requires_grad)
    fields, _tape = torch.ops.fastpinn.mlp_jet_forward(
        theta, x, scale, shift, list(sizes), list(dirs), _flat_pairs(pairs), list(first_out), bool(store),
        activation)
    return fields
