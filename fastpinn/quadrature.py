"""Integral terms: Gauss–Legendre quadrature of the network over a segment per point.

An integro-differential residual such as Volterra's

    du/dx + u = int_0^x e^(t - x) u(t) dt

needs, at each collocation point ``x_i``, the network at ``n`` quadrature nodes ``t_ij`` of the segment
``[0, x_i]``. :func:`integral_term` builds a :class:`~fastpinn.Term` whose point sets are the collocation
points followed by the ``n`` node sets (set ``j`` holds node ``j`` of every point's segment, so all sets are
``[N, d]`` and pair up point by point, as the two faces of a periodic term do); the quadrature weights
travel as the term's targets. Mini-batching, ensembles ``[S, N, d]`` and every derivative method therefore
work as for any multi-point-set term. The residual receives the fields at the points and a
:class:`Quadrature` of the fields at the nodes:

    def residual(f, quad):
        x = f.x[..., 0]
        integral = quad.integral(lambda g: torch.exp(g.x[..., 0] - x) * g["u"][..., 0])   # [N]
        return f["u_x"][..., 0] + f["u"][..., 0] - integral

    term = integral_term("ide", x, residual, ("u", "u_x"), axis=0, lower=0.0, n=20)

Cost: the network and the requested derivatives are evaluated at ``N (n + 1)`` points per step (the
requests are shared by the point set and the nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .derivatives import Fields
from .problem import Term
from .validation import check_int

__all__ = ["gauss_legendre", "segment_nodes", "integrate", "Quadrature", "integral_term"]

Bound = Union[None, float, Tensor]


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes ``[n]`` and weights ``[n]`` on ``[-1, 1]`` (float64); exact for polynomials of
    degree up to ``2n - 1``."""
    n = check_int("quadrature n", n, minimum=1)
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return nodes, weights


def _bound(value: Bound, points: Tensor, axis: int, what: str) -> Tensor:
    """A segment end ``[..., N]``: the point's own coordinate (``None``), a number, or a tensor ``[..., N]``."""
    lead = tuple(points.shape[:-1])
    if value is None:
        return points[..., axis]
    v = torch.as_tensor(value, dtype=points.dtype, device=points.device)
    if v.dim() == 0:
        return v.expand(lead)
    if tuple(v.shape) != lead:
        raise ValueError(f"{what} must be None (the point's coordinate), a number or a tensor of shape "
                         f"{list(lead)}, got shape {list(v.shape)}")
    return v


def segment_nodes(points: Tensor, axis: int, lower: Bound = None, upper: Bound = None,
                  n: int = 16) -> tuple[tuple[Tensor, ...], Tensor]:
    """Gauss–Legendre nodes of one segment per point along coordinate ``axis``.

    Args:
        points: ``[N, d]`` or ``[S, N, d]``.
        axis: the column the segments run along; the other coordinates are kept from each point.
        lower, upper: the segment ends ``a``, ``b``: ``None`` for the point's own coordinate, a number, or
            a tensor ``[N]`` (``[S, N]``). ``a > b`` integrates backwards (a negative integral).
        n: nodes per segment.

    Returns:
        ``n`` point sets ``[..., N, d]`` (set ``j`` holds node ``j`` of every segment) and the weights
        ``[..., N, n]`` (Gauss–Legendre weights times ``(b - a) / 2``), so that
        ``integral_i = sum_j weights[i, j] * g(sets[j][i])``.
    """
    if not isinstance(points, Tensor) or points.dim() not in (2, 3) or not points.is_floating_point():
        raise ValueError("segment_nodes: points must be a floating-point tensor [N, d] or [S, N, d]")
    d = points.shape[-1]
    axis = check_int("segment_nodes axis", axis, minimum=0, maximum=d - 1)
    t, w = gauss_legendre(n)
    a = _bound(lower, points, axis, "segment_nodes lower")
    b = _bound(upper, points, axis, "segment_nodes upper")
    half, mid = (b - a) / 2, (b + a) / 2  # [..., N]
    sets = []
    for tj in t.tolist():
        nodes = points.detach().clone()
        nodes[..., axis] = mid + half * tj
        sets.append(nodes)
    weights = half.unsqueeze(-1) * torch.as_tensor(w, dtype=points.dtype, device=points.device)
    return tuple(sets), weights.detach()


def integrate(values: Union[Tensor, Sequence[Tensor]], weights: Tensor) -> Tensor:
    """Combine values at the nodes into integrals: ``values`` ``[..., N, n]`` (or a sequence of ``n``
    tensors ``[..., N]`` / ``[..., N, m]``, one per node set) and ``weights`` ``[..., N, n]`` give
    ``[..., N]`` (``[..., N, m]``)."""
    if isinstance(values, Tensor):
        return (values * weights).sum(-1)
    if len(values) != weights.shape[-1]:
        raise ValueError(f"integrate: {len(values)} node values for {weights.shape[-1]} weights per point")
    total = None
    for j, v in enumerate(values):
        w = weights[..., j]
        term = v * (w.unsqueeze(-1) if v.dim() == w.dim() + 1 else w)
        total = term if total is None else total + term
    return total


@dataclass
class Quadrature:
    """The fields at the quadrature nodes of each point's segment, as a residual of :func:`integral_term`
    receives them.

    Attributes:
        nodes: one :class:`~fastpinn.Fields` per node, each at ``[..., N, d]`` (``nodes[j].x`` the node
            coordinates, ``nodes[j]["u"]`` the network there).
        weights: ``[..., N, n]``, the segment's Gauss–Legendre weights.
    """

    nodes: tuple[Fields, ...]
    weights: Tensor

    def integral(self, integrand: Callable[[Fields], Tensor]) -> Tensor:
        """``sum_j weights[..., j] * integrand(nodes[j])``: ``integrand`` maps the fields at one node set
        to ``[..., N]`` (or ``[..., N, m]``); returns the integrals, same shape."""
        return integrate([integrand(g) for g in self.nodes], self.weights)


def integral_term(name: str, points: Tensor, residual: Callable[[Fields, Quadrature], Tensor],
                  requests: Sequence[str], *, axis: int, lower: Bound = None, upper: Bound = None,
                  n: int = 16, batch_size: Optional[int] = None) -> Term:
    """A residual term with an integral over one segment per point along coordinate ``axis``.

    ``residual(f, quad)`` gets the :class:`~fastpinn.Fields` at ``points`` ``[N, d]`` (or ``[S, N, d]``) and
    a :class:`Quadrature` of the fields at the ``n`` Gauss–Legendre nodes of ``[lower, upper]`` (each
    ``None`` for the point's own coordinate, a number, or ``[N]``); it returns ``[..., N]`` or
    ``[..., N, m]``. ``requests`` are evaluated at the points and at the nodes. Volterra:
    ``lower=0.0, upper=None``; Fredholm over a fixed ``[a, b]``: ``lower=a, upper=b``.
    """
    sets, weights = segment_nodes(points, axis, lower, upper, n)

    def with_quadrature(f: Fields, *rest: Union[Fields, Tensor]) -> Tensor:
        *nodes, w = rest
        return residual(f, Quadrature(tuple(nodes), w))

    requests = (requests,) if isinstance(requests, str) else tuple(requests)
    return Term(name, (points,) + sets, with_quadrature, requests, batch_size, weights)
