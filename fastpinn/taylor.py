"""The ``"taylor"`` derivative method: pure input derivatives ``d^k u / dx_c^k`` of a tanh or sin
:class:`~fastpinn.network.MLP` by univariate Taylor mode, in one compiled call (:mod:`fastpinn.ops.mlp_taylor`).

It applies when every request of a term is the value or a pure derivative along one coordinate (``u_xxxx``,
``u_t``; not ``u_tx``: a mixed partial is not a coefficient of a series along one line), whatever the order up to
:data:`~fastpinn.ops.mlp_taylor.MAX_ORDER`. A 4th-order term (Euler beam) is one pass of 5 channels instead of
four nested ``autograd.grad`` graphs.
"""

from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor

from .network import MLP
from .ops.mlp_jet import DerivIndex
from .ops.mlp_taylor import MAX_ORDER, TAYLOR_ACTIVATIONS, mlp_taylor, taylor_reference

__all__ = ["taylor_reason", "taylor_plan", "taylor_mlp"]


def taylor_reason(net: object, wanted: Sequence[DerivIndex]) -> Optional[str]:
    """Why the ``"taylor"`` method cannot compute ``wanted`` for ``net`` (``None``: it can)."""
    if not isinstance(net, MLP):
        return f"needs a fastpinn.network.MLP, got {type(net).__name__}"
    if net.activation.name not in TAYLOR_ACTIVATIONS:
        return f"has Taylor recursions for {' and '.join(TAYLOR_ACTIVATIONS)} only; this MLP uses {net.activation.name!r}"
    if net.transformed:
        return "the compiled kernel has no input/output transforms (use method 'jet' or 'autograd')"
    mixed = sorted({w for w in wanted if len(set(w)) > 1})
    if mixed:
        return (f"computes pure derivatives along one coordinate only; mixed partials {mixed} (as coordinate "
                "indices) are not Taylor coefficients along one line (use 'jet', 'fused' or 'autograd')")
    too_high = sorted({len(w) for w in wanted if len(w) > MAX_ORDER})
    if too_high:
        return f"computes orders up to {MAX_ORDER}; orders {too_high} were requested"
    return None


def taylor_plan(wanted: Sequence[DerivIndex]) -> tuple[list[int], int]:
    """The directions (sorted coordinates of the derivatives asked) and the order (the highest asked) of one call."""
    dirs = sorted({w[0] for w in wanted if w})
    return dirs, max([len(w) for w in wanted] + [0])  # no max(default=): dynamo breaks its graph on it


def taylor_mlp(net: MLP, theta: Tensor, x: Tensor, wanted: Sequence[DerivIndex],
               reference: bool = False) -> dict[DerivIndex, Tensor]:
    """``wanted`` pure derivatives of ``net`` at ``x`` -> index -> ``[.., N, out]`` (``[S, N, out]`` for
    ``theta[S, P]``; any leading shape of ``x`` for ``theta[P]``), by the compiled op, or by its pure-PyTorch twin
    with ``reference`` (differentiable to any order)."""
    reason = taylor_reason(net, wanted)
    if reason is not None:
        raise ValueError(f"method 'taylor' does not apply: {reason}")
    dirs, order = taylor_plan(wanted)
    ensemble = theta.dim() == 2
    lead = x.shape[:-1]
    th = theta if ensemble else theta.unsqueeze(0)
    points = x if ensemble else x.reshape(-1, x.shape[-1])
    sizes = [net.in_dim] + [net.width] * (net.depth - 1) + [net.out_dim]
    run = taylor_reference if reference else mlp_taylor
    fields = run(th, points, net.input_scale, net.input_shift, sizes, dirs, order, net.activation.name)
    # One unbind (one autograd node) for every channel: a small problem's step pays per node, not per flop.
    channels = fields.unbind(1) if ensemble else fields[0].reshape(fields.shape[1], *lead, fields.shape[-1]).unbind(0)
    return {index: channels[0 if not index else 1 + dirs.index(index[0]) * order + len(index) - 1]
            for index in wanted}
