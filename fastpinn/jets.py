"""Forward derivative jets through a :class:`~fastpinn.network.MLP` (the ``"jet"`` method) and the same jets as
one compiled op (``"fused"``): value, first and second input derivatives carried layer by layer, through the
network's activation and its input/output transforms.

Derivative indices (:data:`~fastpinn.ops.mlp_jet.DerivIndex`): ``()`` the value, ``(i,)`` d/dx_i, ``(i, j)``
d2/dx_i dx_j with ``i <= j``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor
from torch.func import jvp

from .compile_policy import outside_compiled_graphs
from .network import MLP, HardConstraint
from .ops.mlp_jet import JET_ACTIVATIONS, DerivIndex, JetPlan, LeafJet, mlp_jet

__all__ = ["jet_mlp", "fused_mlp", "FusedJet", "fused_network_reason"]

def fused_network_reason(net: MLP) -> Optional[str]:
    """Why the compiled fused kernel cannot run this MLP (``None``: it can)."""
    if net.activation.name not in JET_ACTIVATIONS:
        return (f"the compiled kernel knows the activations {tuple(JET_ACTIVATIONS)}; this MLP uses "
                f"{net.activation.name!r} (use method 'jet')")
    if net.transformed:
        return "the compiled kernel has no input/output transforms (use method 'jet')"
    return None


# ----------------------------------------------------------------------------------------------
# "jet": forward derivative jets through the MLP
# ----------------------------------------------------------------------------------------------


def _pair_products(t: Tensor, pairs: Sequence[tuple[int, int]]) -> Tensor:
    """``t[.., C, M, w]`` -> ``t_i * t_j`` for each pair ``(i, j)``: ``[.., len(pairs), M, w]``."""
    lefts = [i for i, _ in pairs]
    if all(i == j for i, j in pairs) and lefts == list(range(lefts[0], lefts[0] + len(lefts))):
        # Only diagonal channels in a contiguous block (e.g. Poisson's xx, yy): one op on a slice.
        return t[..., lefts[0] : lefts[0] + len(lefts), :, :].square()
    return torch.stack([t[..., i, :, :] * t[..., j, :, :] for i, j in pairs], dim=-3)


def _select_channels(t: Tensor, channels: Sequence[int]) -> Tensor:
    """``t[.., C, M, w]`` -> channels by position; a slice when they are contiguous, so no copy."""
    if not channels:
        return t[..., :0, :, :]
    if list(channels) == list(range(channels[0], channels[0] + len(channels))):
        return t[..., channels[0] : channels[0] + len(channels), :, :]
    return torch.stack([t[..., c, :, :] for c in channels], dim=-3)


def _affine(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``h[.., M, in] @ w[.., out, in]^T + b[.., out]``; ``h[M, in]`` with an ensemble ``w`` broadcasts."""
    if w.dim() == 2:
        if h.dim() == 2:
            return torch.addmm(b, h, w.t())
        return torch.matmul(h, w.t()) + b
    if h.dim() == 2:  # shared points into an ensemble
        return torch.matmul(h, w.transpose(1, 2)) + b.unsqueeze(1)
    return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))


def _linear_channels(t: Tensor, w: Tensor) -> Tensor:
    """Tangent-like channels ``t[.., C, M, in]`` through ``w[.., out, in]`` (no bias): ``[.., C, M, out]``."""
    if w.dim() == 2:
        return torch.matmul(t, w.t())  # folds the leading dims into one matmul
    members, channels, points, n_in = t.shape
    out = torch.bmm(t.reshape(members, channels * points, n_in), w.transpose(1, 2))
    return out.reshape(members, channels, points, w.shape[1])


def jet_mlp(net: MLP, theta: Tensor, x: Tensor, wanted: Sequence[DerivIndex]) -> dict[DerivIndex, Tensor]:
    """Value, first and second derivatives of an MLP by forward propagation of derivative jets: the
    ``"jet"`` method, in pure PyTorch (and the test oracle of the fused op, :func:`fused_mlp`).

    ``theta``: ``[P]``, ``[S, P]`` or the per-layer tensors (``net.layers`` layout); ``x``: ``[N, d]`` (any
    leading shape for a single network) or ``[S, N, d]``; ``wanted``: derivative indices of order <= 2.
    Returns index -> ``[.., N, out]`` (``[S, N, out]`` for an ensemble).

    Per layer we carry, for the requested directions only,
    ``z`` (pre-activation value ``[.., N, w]``), ``T`` (its first derivatives ``[.., nT, N, w]``) and
    ``Q`` (its second derivatives ``[.., nQ, N, w]``). Through ``a = phi(z)`` (the network's activation,
    ``phi'`` and ``phi''`` in closed form): ``T_a = phi' T``, ``Q_a(i,j) = phi' Q(i,j) + phi'' T_i T_j``
    (tanh: ``phi' = 1 - a^2``, ``phi'' = -2 a phi'``, so ``Q_a = phi' (Q - 2 a T_i T_j)``); through an affine map all channels are multiplied by
    ``W^T`` and only the value gets the bias. An input transform's jets start the first layer and an output
    transform is applied to the network's jets (both with ``torch.func``, exact), see :func:`_feature_jets`
    and :func:`_output_transform_jets`.
    """
    plan = JetPlan(wanted)
    if net.output_transform is None:
        return _jet_layers(net, theta, x, plan)
    # The output map needs N's first derivative along every direction a request uses, and the second ones asked.
    inner = JetPlan([()] + [(c,) for c in plan.dirs] + plan.second)
    n = _jet_layers(net, theta, x, inner)
    if n[()].dim() == x.dim() + 1:  # shared points into an ensemble: the map sees x per member, like N
        x = x.unsqueeze(0).expand(n[()].shape[0], *x.shape)
    return _output_transform_jets(net.output_transform, x, n, wanted)


def _pointwise_jets(fn: Callable[[Tensor], Tensor], x: Tensor, wanted: Sequence[DerivIndex]) -> dict[DerivIndex, Tensor]:
    """Value and derivatives (orders <= 2) of a pointwise ``fn: x[..., d] -> [..., F]`` at every point.

    ``fn`` is pointwise, so one forward-mode ``jvp`` of the whole batch along the unit direction ``e_c`` is every
    point's derivative by ``x_c`` (and a nested one the second derivatives): a few evaluations of ``fn``, no
    ``vmap`` over points.
    """
    x = x.contiguous()  # a forward-mode primal may not be an expanded view (shared points of an ensemble)
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)

    def along(f: Callable[[Tensor], Tensor], c: int) -> Callable[[Tensor], Tensor]:
        return lambda y: jvp(f, (y,), (eye[c].expand_as(y).clone(),))[1]

    out: dict[DerivIndex, Tensor] = {}
    for index in wanted:
        g = fn
        for c in index:
            g = along(g, c)
        out[index] = g(x)
    return out


@outside_compiled_graphs  # dynamo does not trace these jvps well; they depend on x only, not on theta
def _feature_jets(fn: Callable[[Tensor], Tensor], x: Tensor, plan: JetPlan) -> dict[DerivIndex, Tensor]:
    """An input transform's value and its derivatives along ``plan.dirs`` and ``plan.second``."""
    return _pointwise_jets(fn, x, [()] + [(c,) for c in plan.dirs] + list(plan.second))


def _output_transform_jets(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, n: Mapping[DerivIndex, Tensor],
                           wanted: Sequence[DerivIndex]) -> dict[DerivIndex, Tensor]:
    """Derivatives of ``u(x) = fn(x, N(x))`` from ``N``'s jets ``n`` (value, ``(c,)`` per direction, requested pairs).

    :class:`HardConstraint` ``u = g + d N``: the product rule on the jets of ``g`` and ``d`` (functions of ``x``
    only). Any other map: along the curve ``h(s, r) = fn(x + s e_i + r e_j, N + s N_i + r N_j + s r N_ij)`` the
    chain rule gives ``dh/ds(0) = u_i`` and ``d2h/ds dr(0, 0) = u_ij`` exactly (the ``s^2``, ``r^2`` terms of N's
    Taylor expansion do not reach the mixed derivative), so nested forward-mode ``jvp`` in the scalars ``s``, ``r``
    of the pointwise ``fn`` on all points at once gives every point's derivative.
    """
    if isinstance(fn, HardConstraint):
        return _hard_constraint_jets(fn, x, n, wanted)
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    zero, one = x.new_zeros(()), x.new_ones(())
    n0 = n[()]

    def along(g: Callable[[Tensor], Tensor]) -> Tensor:
        return jvp(g, (zero,), (one,))[1]

    out: dict[DerivIndex, Tensor] = {}
    for index in wanted:
        if index == ():
            out[index] = fn(x, n0)
        elif len(index) == 1:
            (i,) = index
            out[index] = along(lambda s, i=i: fn(x + s * eye[i], n0 + s * n[(i,)]))
        else:
            i, j = index

            def mixed(s: Tensor, i: int = i, j: int = j) -> Tensor:
                return along(lambda r: fn(x + s * eye[i] + r * eye[j],
                                          n0 + s * n[(i,)] + r * n[(j,)] + (s * r) * n[(i, j)]))

            out[index] = along(mixed)
    return out


def _hard_constraint_jets(fn: HardConstraint, x: Tensor, n: Mapping[DerivIndex, Tensor],
                          wanted: Sequence[DerivIndex]) -> dict[DerivIndex, Tensor]:
    """``u = g + d N``: ``u_i = g_i + d_i N + d N_i``, ``u_ij = g_ij + d_ij N + d_i N_j + d_j N_i + d N_ij``."""
    g = _pointwise_jets(fn.g, x, wanted)
    d = _pointwise_jets(fn.d, x, list(n))
    out: dict[DerivIndex, Tensor] = {}
    for index in wanted:
        if index == ():
            out[index] = g[()] + d[()] * n[()]
        elif len(index) == 1:
            out[index] = g[index] + d[index] * n[()] + d[()] * n[index]
        else:
            i, j = index
            out[index] = (g[index] + d[index] * n[()] + d[(i,)] * n[(j,)] + d[(j,)] * n[(i,)]
                          + d[()] * n[index])
    return out


def _jet_layers(net: MLP, theta: Tensor, x: Tensor, plan: JetPlan) -> dict[DerivIndex, Tensor]:
    """The jets of the network's output before any output transform (see :func:`jet_mlp`)."""
    layers = net.layers(theta)
    ensemble = layers[0][0].dim() == 3
    lead = x.shape[:-1]
    if not ensemble and x.dim() != 2:
        x = x.reshape(-1, x.shape[-1])  # a single net is pointwise: fold any leading shape into N

    w0, b0 = layers[0]
    q: Optional[Tensor] = None
    if net.input_transform is None:
        scale = net.input_scale
        z = _affine(x * scale + net.input_shift, w0, b0)  # [.., N, w]
        # d(first pre-activation)/dx_c = scale_c * W0[:, c] is the same at every point: one row per direction, M = 1.
        if plan.dirs:
            t = torch.stack([w0[..., :, c] * scale[c] for c in plan.dirs], dim=-2).unsqueeze(-2)  # [.., nT, 1, w]
        else:
            t = None
        # second derivatives of the first pre-activation are zero
    else:
        features = _feature_jets(net.input_transform, x, plan)  # index -> [.., N, F]
        z = _affine(features[()], w0, b0)
        t = _linear_channels(_channels_for(w0, [features[(c,)] for c in plan.dirs]), w0) if plan.dirs else None
        if plan.second:
            q = _linear_channels(_channels_for(w0, [features[index] for index in plan.second]), w0)

    activation = net.activation
    for depth_index, (w, b) in enumerate(layers[1:]):
        if activation.factored is not None:  # phi'' = phi' c r: Q_a = phi' (Q + c r T_i T_j)
            a, d1, r, c = activation.factored(z)
            d1_c = d1.unsqueeze(-3)  # broadcast over channels
            if plan.pairs:
                tt = _pair_products(t, plan.pairs)
                r_c = r.unsqueeze(-3)
                q = d1_c * (tt * (c * r_c) if q is None else torch.addcmul(q, r_c, tt, value=c))
        else:
            a, d1, d2 = activation.jet(z)
            d1_c = d1.unsqueeze(-3)
            if plan.pairs:
                tt = _pair_products(t, plan.pairs)
                d2_c = d2.unsqueeze(-3)
                q = d2_c * tt if q is None else torch.addcmul(d1_c * q, d2_c, tt)
        if t is not None:
            if depth_index == len(layers) - 2:
                t = _select_channels(t, plan.first_out)  # the output layer only needs requested tangents
            t = d1_c * t
            t = _linear_channels(t, w)
        if q is not None:
            q = _linear_channels(q, w)
        z = _affine(a, w, b)

    if len(layers) == 1 and t is not None:
        t = _select_channels(t, plan.first_out)
    values: dict[DerivIndex, Tensor] = {(): z}
    for k, index in enumerate(plan.first):
        values[index] = t[..., k, :, :].expand_as(z)  # depth 1: the derivative is the same at every point
    for k, index in enumerate(plan.second):
        values[index] = q[..., k, :, :] if q is not None else torch.zeros_like(z)  # depth 1: affine
    if len(layers) == 1:
        values = {index: v.contiguous() for index, v in values.items()}
    if not ensemble:
        values = {index: v.reshape(*lead, v.shape[-1]) for index, v in values.items()}
    return values


def _channels_for(w: Tensor, channels: Sequence[Tensor]) -> Tensor:
    """Stack per-channel ``[.., N, F]`` tensors as ``[.., C, N, F]``, with a members dim when ``w`` has one."""
    t = torch.stack(channels, dim=-3)
    if w.dim() == 3 and t.dim() == 3:  # shared points into an ensemble
        t = t.unsqueeze(0).expand(w.shape[0], *t.shape)
    return t


class FusedJet:
    """:func:`fused_mlp` for one network and one set of requests, planned once (the applicability check, the
    :class:`~fastpinn.ops.mlp_jet.JetPlan`, the op's static arguments): a trainer's term calls it every step.

    Call ``(theta, x, leaves=None) -> {DerivIndex: [.., N, out]}`` as :func:`fused_mlp`; :meth:`blocks` splits
    the fields of concatenated point sets per set.

    Raises (at construction): ValueError when the fused op cannot run ``net``; NotImplementedError for
    orders above 2."""

    def __init__(self, net: MLP, wanted: Sequence[DerivIndex]) -> None:
        reason = fused_network_reason(net)
        if reason is not None:
            raise ValueError(f"method 'fused' does not apply: {reason}")
        self.net = net
        plan = JetPlan(wanted)
        #: The derivative index of each channel of the op's fields, in channel order.
        self.channels: list[DerivIndex] = [()] + plan.first + plan.second
        sizes = [net.in_dim] + [net.width] * (net.depth - 1) + [net.out_dim]
        self.plan, self.sizes = plan, sizes
        self.leaf_jet = LeafJet(sizes, plan.dirs, plan.pairs, plan.first_out, activation=net.activation.name)

    def fields(self, theta: Tensor, x: Tensor, leaves: Optional[Sequence[Tensor]] = None) -> Tensor:
        """The op's ``fields[S, C, N, out]`` at the points ``x`` (flattened to ``[N, d]`` for ``theta[P]``)."""
        net, plan = self.net, self.plan
        if leaves is not None:
            points = x if theta.dim() == 2 else x.reshape(-1, x.shape[-1])
            return self.leaf_jet(theta, leaves, points, net.input_scale, net.input_shift)
        th, points = (theta, x) if theta.dim() == 2 else (theta.unsqueeze(0), x.reshape(-1, x.shape[-1]))
        return mlp_jet(th, points, net.input_scale, net.input_shift, self.sizes, plan.dirs, plan.pairs,
                       plan.first_out, activation=net.activation.name)

    def _unbind(self, fields: Tensor, ensemble: bool, lead: Sequence[int]) -> dict[DerivIndex, Tensor]:
        # One multi-output view node per call (its backward stacks the channels' gradients), where a select
        # per channel would each zero and copy the whole field tensor in the backward.
        if ensemble:
            return dict(zip(self.channels, fields.unbind(1)))
        per = fields.squeeze(0).unbind(0)
        if len(lead) != 1:
            per = [v.reshape(*lead, v.shape[-1]) for v in per]
        return dict(zip(self.channels, per))

    def __call__(self, theta: Tensor, x: Tensor, leaves: Optional[Sequence[Tensor]] = None) -> dict[DerivIndex, Tensor]:
        return self._unbind(self.fields(theta, x, leaves), theta.dim() == 2, x.shape[:-1])

    def blocks(self, theta: Tensor, x: Tensor, spans: Sequence[int],
               leaves: Optional[Sequence[Tensor]] = None) -> list[dict[DerivIndex, Tensor]]:
        """The fields at ``x`` ``[N, d]`` (``[S, N, d]`` or ``[N, d]`` for ``theta[S, P]``), whose points are
        consecutive sets of ``spans`` points: one dict per set, each tensor ``[n, out]`` (``[S, n, out]``)."""
        ensemble = theta.dim() == 2
        fields = self.fields(theta, x, leaves)
        if not ensemble:
            fields = fields.squeeze(0)
        return [dict(zip(self.channels, part.unbind(-3))) for part in fields.split_with_sizes(list(spans), dim=-2)]


def fused_mlp(net: MLP, theta: Tensor, x: Tensor, wanted: Sequence[DerivIndex],
              leaves: Optional[Sequence[Tensor]] = None) -> dict[DerivIndex, Tensor]:
    """:func:`jet_mlp`'s contract through the fused op ``fastpinn::mlp_jet_forward``
    (:mod:`fastpinn.ops.mlp_jet`): ``wanted`` derivative indices
    -> tensors ``[.., N, out]`` (``[S, N, out]`` for ``theta[S, P]``; any leading shape of ``x`` for a
    single network). Orders <= 2 (``NotImplementedError`` beyond, as ``"jet"``). ``leaves``: per-layer views
    of ``theta`` (:meth:`MLP.leaves`) that receive the gradient instead of ``theta``. Evaluating the same
    requests repeatedly: plan them once with :class:`FusedJet`."""
    return FusedJet(net, wanted)(theta, x, leaves)
