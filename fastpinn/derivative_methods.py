"""The registry of derivative methods: what each computes, for which networks, and how.

Each method is one :class:`DerivativeMethod` registered with :func:`register_method` (``"jet"``, ``"fused"``,
``"func"``, ``"autograd"``, ``"taylor"`` below, a user's too): whether it applies to a network and a set of
derivative requests (:func:`applicable_methods`) and how it computes them -- the computations themselves live
in :mod:`fastpinn.jets` (``"jet"``, ``"fused"``), :mod:`fastpinn.autodiff` (``"func"``, ``"autograd"``) and
:mod:`fastpinn.taylor` (``"taylor"``). The trainer, the tuner and the command line all read this one list.
Which method ``"auto"`` picks, and the entry point that runs one, are :mod:`fastpinn.derivatives`'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.func import functional_call

from fastpinn.network import MLP
from fastpinn.autodiff import autograd_derivatives, autograd_mlp, func_mlp, func_pointwise, mlp_members
from fastpinn.jets import FusedJet, fused_network_reason, jet_mlp
from fastpinn.taylor import taylor_mlp, taylor_reason
from fastpinn.ops.mlp_jet import DerivIndex
from fastpinn.requests import Request, parse_requests

__all__ = ["DerivativeMethod", "METHODS", "register_method", "registered_method", "method_names",
           "applicable_methods", "jet_applicable"]


@dataclass(frozen=True)
class DerivativeMethod:
    """One way of computing input derivatives.

    Attributes:
        name: what ``method=`` calls it.
        applicable: ``(net, wanted) -> None`` when the method handles this network and these
            derivatives, else a short reason why not.
        compute: ``(net, theta, x, wanted) -> {DerivIndex: tensor}`` (``theta`` as :func:`derivatives`
            takes it; already checked for an :class:`MLP`).
        doc: one line for help texts.
        prepare: optional ``(net, wanted) -> run`` planning once what ``compute`` would redo per call, with
            ``run(theta, x)`` returning what ``compute(net, theta, x, wanted)`` returns (bit for bit) and, when
            it has one, ``run.blocks(theta, x, spans)`` the same split into consecutive point sets
            (:class:`PreparedDerivatives`). ``None``: every call goes through ``compute``.
    """

    name: str
    applicable: Callable[[Any, Sequence[DerivIndex]], Optional[str]]
    compute: Callable[[Any, Any, Tensor, Sequence[DerivIndex]], dict]
    doc: str = ""
    prepare: Optional[Callable[[Any, Sequence[DerivIndex]], Any]] = None


_REGISTRY: dict[str, DerivativeMethod] = {}
#: ``"auto"`` followed by every registered method, in registration order (updated by register_method).
METHODS: tuple[str, ...] = ("auto",)


def register_method(method: DerivativeMethod) -> None:
    """Add (or replace) a derivative method; it becomes usable everywhere ``method=`` is taken."""
    global METHODS
    if not method.name.isidentifier() or method.name in ("auto", "tune"):
        raise ValueError(f"method name must be an identifier other than 'auto' and 'tune', got {method.name!r}")
    _REGISTRY[method.name] = method
    METHODS = ("auto",) + tuple(_REGISTRY)


def method_names() -> tuple[str, ...]:
    """The registered methods (without ``"auto"``)."""
    return tuple(_REGISTRY)


def registered_method(name: str) -> DerivativeMethod:
    """The registered method called ``name`` (``KeyError`` if none is)."""
    return _REGISTRY[name]


def applicable_methods(net: Any, requests: Union[Request, Sequence[Request]], coords: Sequence[str]) -> dict[str, Optional[str]]:
    """Registered method -> ``None`` if it applies to ``net`` and ``requests``, else why not."""
    wanted = parse_requests(requests, coords)
    return {name: m.applicable(net, wanted) for name, m in _REGISTRY.items()}


def jet_applicable(net: Any, wanted: Sequence[DerivIndex]) -> Optional[str]:
    if not isinstance(net, MLP):
        return f"needs a fastpinn.network.MLP, got {type(net).__name__}"
    orders = sorted({len(w) for w in wanted if len(w) > 2})
    if orders:
        return f"computes derivatives up to order 2; orders {orders} were requested"
    return None


def _fused_applicable(net: Any, wanted: Sequence[DerivIndex]) -> Optional[str]:
    return jet_applicable(net, wanted) or fused_network_reason(net)


def _any_network(net: Any, wanted: Sequence[DerivIndex]) -> Optional[str]:
    if isinstance(net, MLP) or isinstance(net, nn.Module) or callable(net):
        return None
    return f"needs an nn.Module or a callable, got {type(net).__name__}"


def _compute_jet(net: MLP, theta: Any, x: Tensor, wanted: Sequence[DerivIndex]) -> dict:
    return jet_mlp(net, theta, x, wanted)


def _flat_theta(net: MLP, theta: Any) -> Tensor:
    """The flat ``[P]``/``[S, P]`` theta the compiled ops take; per-layer leaves are views of it in layout order."""
    if isinstance(theta, Tensor):
        return theta
    members = mlp_members(net, theta)
    return torch.cat([t.reshape(members, -1) if members else t.reshape(-1) for t in theta], dim=-1)


class _FusedRun:
    """The ``"fused"`` method planned for one network and requests (:class:`~fastpinn.jets.FusedJet`)."""

    def __init__(self, net: MLP, wanted: Sequence[DerivIndex]) -> None:
        self.net, self.jet = net, FusedJet(net, wanted)

    def _theta(self, theta: Any) -> tuple[Tensor, Optional[Sequence[Tensor]]]:
        if not isinstance(theta, Tensor) and theta is self.net.leaves():
            # The Trainer's leaves: the op reads net.theta (their storage) and hands them their gradient slices,
            # with no per-step cat (and its backward) of the leaves.
            return self.net.theta, theta
        return _flat_theta(self.net, theta), None

    def __call__(self, theta: Any, x: Tensor) -> dict:
        flat, leaves = self._theta(theta)
        return self.jet(flat, x, leaves)

    def blocks(self, theta: Any, x: Tensor, spans: Sequence[int]) -> list[dict]:
        flat, leaves = self._theta(theta)
        return self.jet.blocks(flat, x, spans, leaves)


def _compute_fused(net: MLP, theta: Any, x: Tensor, wanted: Sequence[DerivIndex]) -> dict:
    return _FusedRun(net, wanted)(theta, x)


def _compute_taylor(net: MLP, theta: Any, x: Tensor, wanted: Sequence[DerivIndex]) -> dict:
    return taylor_mlp(net, _flat_theta(net, theta), x, wanted)


def _compute_func(net: Any, theta: Any, x: Tensor, wanted: Sequence[DerivIndex]) -> dict:
    if isinstance(net, MLP):
        return func_mlp(net, theta, x, wanted)
    return func_pointwise(_batched_callable(net, theta), x, wanted)


def _compute_autograd(net: Any, theta: Any, x: Tensor, wanted: Sequence[DerivIndex]) -> dict:
    if isinstance(net, MLP):
        return autograd_mlp(net, theta, x, wanted)
    return autograd_derivatives(_batched_callable(net, theta), x, wanted)




def _batched_callable(net: Any, theta: Any) -> Callable[[Tensor], Tensor]:
    """``[M, d] -> [M, *out]`` for a module (with optional replacement parameters) or a callable."""
    if theta is None:
        return net
    if isinstance(net, nn.Module) and isinstance(theta, Mapping):
        return lambda points: functional_call(net, dict(theta), (points,))
    raise ValueError(
        "theta for a module other than MLP must be a mapping of parameter names to tensors "
        f"(torch.func.functional_call), got {type(theta).__name__} for {type(net).__name__}"
    )


register_method(DerivativeMethod("jet", jet_applicable, _compute_jet,
                                 "forward derivative jets through a fastpinn.MLP (orders <= 2)"))
register_method(DerivativeMethod("fused", _fused_applicable, _compute_fused,
                                 "the forward jets of 'jet' as one compiled op over tiles of points (tanh, sin, silu "
                                 "or softplus MLP without transforms, orders <= 2)", prepare=_FusedRun))
register_method(DerivativeMethod("func", _any_network, _compute_func,
                                 "torch.func: vmap over points of jacrev/jvp (any pointwise network, any order)"))
register_method(DerivativeMethod("autograd", _any_network, _compute_autograd,
                                 "nested torch.autograd.grad (any pointwise network, any order; the oracle)"))
register_method(DerivativeMethod("taylor", taylor_reason, _compute_taylor,
                                 "univariate Taylor mode as one compiled op: pure derivatives d^k u/dx_c^k of a tanh or "
                                 "sin MLP without transforms, any order up to 8 (no mixed partials)"))
