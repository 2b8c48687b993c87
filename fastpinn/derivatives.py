"""Per-point derivatives of a network's output with respect to its input coordinates.

A PDE residual needs, at every collocation point ``x_n``, the value ``u(x_n)`` and a few partial
derivatives such as ``u_t``, ``u_x`` and ``u_xx``. :func:`derivatives` computes exactly the requested
ones, keeps them differentiable with respect to the network's parameters (the residual loss is
back-propagated to ``theta``) and never asks the caller to set ``requires_grad`` on the points.

Interchangeable methods:

* ``"jet"`` -- forward-propagated derivative jets through an :class:`~fastpinn.network.MLP`: the value,
  the first-derivative tangents along only the needed coordinate directions and the requested second
  derivatives travel together through every affine map (batched matmuls) and activation (closed-form
  derivatives of each of :data:`fastpinn.network.ACTIVATIONS`), and through the MLP's input/output
  transforms (``torch.func``). Orders <= 2.
* ``"func"`` -- ``torch.func``: ``vmap`` over points of ``jacrev`` (value and first derivatives) and
  ``jvp`` of it along only the needed directions (second derivatives) of a per-point function
  ``x_i[d] -> u_i[out]``; nested ``jvp`` for higher orders. Works for any pointwise callable; any order.
* ``"fused"`` -- the same jets as ``"jet"`` in one compiled op over tiles of points
  (:mod:`fastpinn.ops.mlp_jet`: C++ CPU kernel, Triton CUDA kernel; ``"jet"`` is its oracle). tanh, sin, silu
  or softplus MLP (CUDA: tanh) without transforms only, orders <= 2, first-order differentiable (a double
  backward raises).
* ``"autograd"`` -- nested ``torch.autograd.grad(..., create_graph=True)``, the classic PINN way and
  the oracle for the other two. Any order.
* ``"taylor"`` -- univariate Taylor mode as one compiled op (:mod:`fastpinn.taylor`,
  :mod:`fastpinn.ops.mlp_taylor`): pure derivatives ``d^k u/dx_c^k`` (no mixed partials) of a tanh or sin MLP
  without transforms, orders up to 8 in one pass (``"auto"``'s pick above order 2 where it is measured faster).

This module holds the choice and the entry point (the requests and the result container are in
:mod:`fastpinn.requests`); the methods form one registry, :mod:`fastpinn.derivative_methods`
(:func:`register_method`, :func:`method_names`, re-exported here): each says whether it applies to a
network and a set of requests (:func:`applicable_methods`), so the trainer, the tuner and the command line
all read the same list; the computations live in :mod:`fastpinn.jets` (``"jet"``, ``"fused"``),
:mod:`fastpinn.autodiff` (``"func"``, ``"autograd"``) and :mod:`fastpinn.taylor`. ``"auto"`` picks one with
:func:`choose_method`;
:func:`fastest_method` times the candidates on the actual network, points and device, checks that they
agree, and returns the fastest (the trainer's ``derivative_method="tune"``).

Request spec: :mod:`fastpinn.requests` (``"u"``, ``"u_x"``, ``"u_tx"`` or tuples of coordinate names).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Optional, Sequence, Union

import math
import time
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fastpinn import derivative_methods, method_costs
from fastpinn.network import MLP
from fastpinn.derivative_methods import (DerivativeMethod, applicable_methods, jet_applicable, method_names,
                                         register_method, registered_method)
from fastpinn.jets import fused_mlp, fused_network_reason, jet_mlp
from fastpinn.taylor import taylor_reason
from fastpinn.ops import _ext
from fastpinn.ops.mlp_jet import DerivIndex
from fastpinn.ops.mlp_taylor import taylor_available
from fastpinn.requests import Fields, Request, check_coords, parse_request, parse_requests

__all__ = ["derivatives", "PreparedDerivatives", "Fields", "choose_method", "fastest_method", "MethodChoice", "parse_request",
           "parse_requests", "METHODS", "DerivativeMethod", "register_method", "method_names",
           "applicable_methods", "jet_mlp", "fused_mlp"]

Method = str  # "auto" or a registered method name (see method_names())


def __getattr__(name: str) -> Any:
    # METHODS is rebound by every register_method: read it from the registry, so it stays current here too.
    if name == "METHODS":
        return derivative_methods.METHODS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------


#: Points per step assumed by :func:`choose_method` when neither ``x`` nor ``n_points`` says.
DEFAULT_POINTS = 1000


def choose_method(net: Any, x: Optional[Tensor] = None, wanted: Optional[Sequence[DerivIndex]] = None,
                  n_points: Optional[int] = None) -> str:
    """The method ``"auto"`` resolves to for one term: the fastest applicable one by the measured cost model of
    :mod:`fastpinn.method_costs` (a pure function of the shape: the same network, orders and point count always
    give the same method).

    * Requests above order 2 that are all pure derivatives along one coordinate (``u_xxxx``), of a tanh or sin
      MLP on the CPU with the compiled extension: the faster of ``"taylor"`` (one compiled Taylor-mode pass) and
      ``"autograd"`` by the cost model (``"taylor"`` wherever measured so far, see :mod:`fastpinn.method_costs`).
    * A network other than :class:`MLP`, or another request above order 2: ``"autograd"``. ``"func"`` (a ``vmap`` of
      per-point ``torch.func`` transforms) took 2-80x the time of ``"autograd"`` wherever it was measured
      (``bench/bench_auto_method.py``), so it is never the default.
    * An MLP with input/output transforms: ``"autograd"`` -- the jet pays for the transforms' own ``torch.func``
      jets: on the Burgers network (9 x 20, 2540 points, u, u_t, u_x, u_xx) the median step was jet 24 / autograd
      19 ms with a :class:`~fastpinn.network.HardConstraint`, 37 / 20 ms with a general output map, 37 / 28 ms with
      periodic features and a hard constraint.
    * A plain MLP on the CPU (orders <= 2): the least predicted time among ``"fused"`` (an activation of
      :data:`~fastpinn.ops.activations.JET_ACTIVATIONS`, compiled extension loaded), ``"jet"`` and ``"autograd"`` for
      the term's order, the network's width and ``n_points``
      (:func:`fastpinn.method_costs.fastest`; e.g. ``fused`` for Burgers' 9 x 20 net, ``autograd`` for
      first derivatives of a 150-wide one). On another device: ``"jet"`` (not calibrated there).

    Args:
        net: the network. x: the points (their count is the default ``n_points``). wanted: the term's
            derivative indices (``None``: up to order 2). n_points: points per step and member (a mini-batch's
            size); default: from ``x``, else :data:`DEFAULT_POINTS`. An ensemble of ``S`` members counts
            ``S * N`` points (its work), so does ``x`` of shape ``[S, N, d]``.

    ``derivative_method="tune"`` measures instead, on the actual device and load.
    """
    if not isinstance(net, MLP) or net.transformed:
        return "autograd"
    above_two = wanted is not None and jet_applicable(net, wanted) is not None
    taylor = (wanted is not None and net.theta.device.type == "cpu" and taylor_reason(net, wanted) is None
              and taylor_available())
    if above_two and not taylor:
        return "autograd"
    if net.theta.device.type != "cpu":
        return "jet"
    if above_two:
        candidates = ["taylor", "autograd"]
    else:
        candidates = ["jet", "autograd"]
        if fused_network_reason(net) is None and _ext.available():
            candidates.insert(0, "fused")
    members = net.theta.shape[0] if net.theta.dim() == 2 else 1  # an ensemble evaluates every member's points
    if n_points is None and x is not None and x.dim() >= 1:
        n_points = x.numel() // max(x.shape[-1], 1) * (members if x.dim() == 2 else 1)
    elif n_points is None:
        n_points = DEFAULT_POINTS * members
    else:
        n_points = n_points * members
    order = max((len(w) for w in wanted), default=0) if wanted is not None else 2
    return method_costs.fastest(candidates, order, net.width, max(int(n_points), 1))


@dataclass(frozen=True)
class MethodChoice:
    """What :func:`fastest_method` measured.

    Attributes:
        method: the fastest method whose gradient agreed with the reference.
        seconds: best-of-``repeats`` seconds of one forward + backward, per candidate that ran.
        rejected: candidate -> why it was not eligible (not applicable, or disagreed).
    """

    method: str
    seconds: dict[str, float]
    rejected: dict[str, str]


def _agreement_tolerance(dtype: torch.dtype) -> float:
    # The methods evaluate the same derivatives in different association orders; through a deep tanh network
    # and a mean over points the rounding differences stay a small multiple of eps relative to the gradient
    # norm. sqrt(eps) (3.5e-4 in float32, 1.5e-8 in float64) is far above that and far below any real error.
    return math.sqrt(torch.finfo(dtype).eps)


def fastest_method(
    loss: Callable[[str], Tensor],
    theta: Union[Tensor, Sequence[Tensor]],
    candidates: Optional[Sequence[str]] = None,
    *,
    repeats: int = 3,
) -> MethodChoice:
    """Time ``loss(method)`` forward + backward to ``theta`` for each candidate method; return the fastest
    one whose gradient agrees with the first candidate that ran (the reference).

    Args:
        loss: builds a loss (any shape; it is summed) from the derivatives computed by ``method``.
        theta: the parameters the loss is differentiated by: one tensor (``[P]``, ``[S, P]``) or a list
            (e.g. a module's parameters, or ``MLP.leaves()``).
        candidates: methods to try, reference first (default: every registered method in registration
            order, so ``"jet"`` is the reference where it applies); one that raises ``ValueError`` or
            ``NotImplementedError`` (e.g. ``"jet"`` beyond second order) is skipped.
        repeats: timed calls per candidate after one untimed warm-up; the best is kept (the least
            disturbed by other work on the machine).

    A candidate whose gradient differs from the reference by more than ``sqrt(eps)`` relative to the
    reference's norm is rejected with a ``RuntimeWarning``: it would be a bug, never a speed trade-off.
    """
    candidates = method_names() if candidates is None else tuple(candidates)
    if not candidates:
        raise ValueError("candidates must name at least one method")
    for m in candidates:
        if m not in derivative_methods.METHODS or m == "auto":
            raise ValueError(f"candidates must be among {derivative_methods.METHODS[1:]}, got {m!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")

    params = [theta] if isinstance(theta, Tensor) else list(theta)

    def sync() -> None:
        if params[0].is_cuda:
            torch.cuda.synchronize(params[0].device)

    def grad_of(method: str) -> Tensor:
        grads = torch.autograd.grad(loss(method).sum(), params, allow_unused=True, materialize_grads=True)
        return torch.cat([g.reshape(-1) for g in grads])

    seconds: dict[str, float] = {}
    rejected: dict[str, str] = {}
    reference: Optional[Tensor] = None
    tol = _agreement_tolerance(params[0].dtype)
    for m in candidates:
        try:
            g = grad_of(m)  # warm-up (allocations, lazy initialisation) and the agreement check
        except (ValueError, NotImplementedError) as exc:
            rejected[m] = f"not applicable: {exc}"
            continue
        if reference is None:
            reference = g.detach()
        else:
            err = float(torch.linalg.vector_norm(g - reference) / torch.linalg.vector_norm(reference).clamp_min(1e-300))
            if not err <= tol:
                rejected[m] = f"gradient differs from {next(iter(seconds))!r} by {err:.2e} relative (> {tol:.1e})"
                warnings.warn(f"derivative method {m!r} disagrees with the reference: {rejected[m]}; not used",
                              RuntimeWarning, stacklevel=2)
                continue
        best = math.inf
        for _ in range(repeats):
            sync()
            tick = time.perf_counter()
            grad_of(m)
            sync()
            best = min(best, time.perf_counter() - tick)
        seconds[m] = best
    if not seconds:
        raise ValueError(f"no derivative method applies: {rejected}")
    return MethodChoice(min(seconds, key=seconds.__getitem__), seconds, rejected)


def derivatives(
    net: Union[nn.Module, Callable[[Tensor], Tensor]],
    x: Tensor,
    coords: Sequence[str] = ("t", "x"),
    requests: Union[Request, Sequence[Request]] = ("u", "u_t", "u_x", "u_xx"),
    method: Method = "auto",
    theta: Union[Tensor, Mapping[str, Tensor], None] = None,
) -> Fields:
    """Value and partial derivatives of ``net``'s output at each point, differentiable w.r.t. parameters.

    Args:
        net: an :class:`MLP` (every method), or any ``nn.Module``/callable mapping points ``[M, d]`` to
            outputs ``[M, *out]`` point by point (``"func"`` and ``"autograd"``; nothing may mix
            points, e.g. no batch norm).
        x: points ``[N, d]``; for an ensemble MLP also ``[S, N, d]`` (one set per member). For a
            single network or a callable any leading shape ``[..., d]`` works. ``x`` needs no
            ``requires_grad``; if it has one, gradients also flow back to it.
        coords: names of the ``d`` input columns, in order (distinct identifiers).
        requests: what to compute, see :func:`parse_request`: ``"u"``, ``"u_x"``, ``"u_xx"``,
            ``"u_tx"`` (single-character names) or tuples of names such as ``("x", "x")``.
        method: ``"jet"`` (MLP only, order <= 2), ``"fused"`` (as ``"jet"``, one compiled op),
            ``"func"``, ``"autograd"``, ``"taylor"`` (pure derivatives of a tanh/sin MLP, any order <= 8) or ``"auto"``
            (:func:`choose_method`: the fastest applicable method by a measured cost model).
        theta: parameters to use instead of the module's own: ``[P]`` or ``[S, P]`` for an
            :class:`MLP` (ensemble-ness follows ``theta``'s rank, as in ``MLP.forward_with``); a
            name-to-tensor mapping for another ``nn.Module`` (``torch.func.functional_call``).

    Returns:
        :class:`Fields` whose tensors have shape ``[N, *out]`` (``[S, N, *out]`` for an ensemble) and the
        dtype and device of the network's output.

    Raises:
        ValueError: bad coordinate names, request or shapes. NotImplementedError: ``"jet"`` with a
        derivative of order 3 or more.
    """
    coords = check_coords(coords)
    parse_requests(requests, coords)  # the requests' errors before the points'
    _check_points(x, coords)
    return PreparedDerivatives(net, coords, requests, method)(x, theta)


def _check_points(x: Tensor, coords: Sequence[str]) -> None:
    if x.dim() < 1 or x.shape[-1] != len(coords):
        raise ValueError(f"x must have shape [..., {len(coords)}] (one column per coordinate {coords}), got {tuple(x.shape)}")


class PreparedDerivatives:
    """:func:`derivatives` for one network, coordinates, requests and method, with what depends on them alone
    resolved once: the parsed requests, the method's applicability and its plan (the fused op's channels and
    static arguments). A trainer's term evaluates through one every step; on a tiny problem these checks and
    plans were a sizeable part of the step. ``"auto"`` is resolved per call (it depends on the points).

    Call ``(x, theta=None) -> Fields`` exactly as :func:`derivatives` (same tensors, bit for bit);
    :meth:`blocks` evaluates concatenated point sets once and returns their fields per set. ``theta`` as
    :func:`derivatives` takes it; a per-layer list is checked against the network once per list object
    (the trainer passes the same :meth:`MLP.leaves` every step).

    Raises (at construction) what :func:`derivatives` raises for the network, requests and method."""

    def __init__(self, net: Any, coords: Sequence[str], requests: Union[Request, Sequence[Request]],
                 method: Method = "auto") -> None:
        self.net = net
        self.coords = check_coords(coords)
        #: The requests as derivative indices, in order (a Fields' keys).
        self.wanted = parse_requests(requests, self.coords)
        if method != "auto" and method not in method_names():
            raise ValueError(f"method must be one of {derivative_methods.METHODS}, got {method!r}")
        self.method = method
        self._run = None if method == "auto" else self._resolve(method)
        self._checked: tuple[Any, Any] = (None, None)  # the last per-layer theta checked, and x's shape

    def _resolve(self, name: str) -> Any:
        net, wanted = self.net, self.wanted
        entry = registered_method(name)
        reason = entry.applicable(net, wanted)
        if reason is not None:
            if name == "jet" and "order" in reason:
                raise NotImplementedError(f"method 'jet' {reason}; use method 'func' or 'autograd'")
            raise ValueError(f"method {name!r} does not apply: {reason}")
        if entry.prepare is not None:
            return entry.prepare(net, wanted)
        return lambda theta, x: entry.compute(net, theta, x, wanted)

    def _inputs(self, x: Tensor, theta: Any) -> tuple[Any, Any]:
        """The method's plan for ``x`` and ``theta`` checked as :func:`derivatives` checks them."""
        run = self._run if self._run is not None else self._resolve(choose_method(self.net, x, self.wanted))
        if isinstance(self.net, MLP):
            if theta is None or theta is not self._checked[0] or x.shape != self._checked[1]:
                checked = _check_mlp_inputs(self.net, x, theta)
                if isinstance(theta, (list, tuple)):  # walking a list's layers is the costly part: once per list
                    self._checked = (theta, x.shape)
                theta = checked
        return run, theta

    def __call__(self, x: Tensor, theta: Any = None) -> Fields:
        _check_points(x, self.coords)
        run, theta = self._inputs(x, theta)
        values = run(theta, x)
        return Fields({index: values[index] for index in self.wanted}, self.coords, x)

    def blocks(self, x: Tensor, theta: Any, parts: Sequence[Tensor]) -> list[Fields]:
        """One evaluation at ``x`` ``[.., N, d]``, the concatenation of the point sets ``parts`` along the
        points' dimension; the fields of each set, ``[.., n, out]``, with that set as their points."""
        _check_points(x, self.coords)
        run, theta = self._inputs(x, theta)
        dim = x.dim() - 2  # the points' dimension, in x and in every field
        spans = [p.shape[-2] for p in parts]
        split = getattr(run, "blocks", None)
        if split is not None and x.dim() == 2:
            per = split(theta, x, spans)
        else:
            values = run(theta, x)
            starts = [sum(spans[:i]) for i in range(len(spans))]
            per = [{i: v.narrow(dim, lo, n) for i, v in values.items()} for lo, n in zip(starts, spans)]
        return [Fields({index: p[index] for index in self.wanted}, self.coords, xb) for p, xb in zip(per, parts)]


def _check_mlp_inputs(net: MLP, x: Tensor, theta: Any) -> Any:
    """``theta`` for an MLP: the flat ``[P]``/``[S, P]`` tensor or its per-layer tensors (``net.leaves()``)."""
    theta = net.theta if theta is None else theta
    if isinstance(theta, Tensor):
        if theta.dim() not in (1, 2) or theta.shape[-1] != net.n_params:
            raise ValueError(f"theta for this MLP must be a tensor [{net.n_params}] or [S, {net.n_params}], "
                             f"got {tuple(theta.shape)}")
        members = theta.shape[0] if theta.dim() == 2 else None
    elif isinstance(theta, (list, tuple)) and all(isinstance(t, Tensor) for t in theta):
        layers = net.layers(theta)
        members = layers[0][0].shape[0] if layers[0][0].dim() == 3 else None
    else:
        raise ValueError(f"theta for this MLP must be a tensor [{net.n_params}] / [S, {net.n_params}] or its "
                         f"per-layer tensors, got {type(theta).__name__}")
    if x.shape[-1] != net.in_dim:
        raise ValueError(f"x must have {net.in_dim} columns for this MLP, got shape {tuple(x.shape)}")
    if members is not None and not (x.dim() == 2 or (x.dim() == 3 and x.shape[0] == members)):
        raise ValueError(
            f"an ensemble of {members} members needs x of shape [N, {net.in_dim}] (shared points) or "
            f"[{members}, N, {net.in_dim}], got {tuple(x.shape)}"
        )
    return theta
