"""Each loss term of a problem as a function of the parameters: the derivative method it uses (given,
chosen per term, or tuned by timing on this device) and, when asked, its own ``torch.compile`` graph.

A term's function is ``fn(theta, coefficients, index) -> [S]``: ``theta`` what the network computes with
(its per-layer leaves, or ``None`` for a user module's own parameters), ``coefficients`` the trainable
coefficients ``[C]`` (``[S, C]``), ``index`` the term's mini-batch (``None``: every point).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from .compile_policy import compiled_copy
from .derivatives import MethodChoice, choose_method, fastest_method, method_names, parse_requests
from .problem import Problem
from .rba import ResidualAttention

__all__ = ["derivative_method_choices", "DERIVATIVE_METHODS", "TUNED_METHODS", "network_key", "TermLosses"]

LossFn = Callable[[Any, Optional[Tensor], Optional[Tensor]], Tensor]


def derivative_method_choices() -> tuple[str, ...]:
    """What ``derivative_method=`` takes: ``"auto"``, every registered method, ``"tune"``."""
    return ("auto",) + method_names() + ("tune",)


DERIVATIVE_METHODS = derivative_method_choices()
#: ``"tune"``'s measurements, shared by the trainers of one process: key (:func:`network_key`, device,
#: dtype, term requests, inputs, batch size) -> the fastest method.
TUNED_METHODS: dict[tuple, MethodChoice] = {}


def network_key(net: nn.Module) -> tuple:
    """What tells two networks apart for the derivative-method cache: class, parameter and buffer
    shapes, and the module's repr (an MLP's shape; a user module's submodules)."""
    shapes = tuple((name, tuple(t.shape), str(t.dtype)) for name, t in
                   list(net.named_parameters()) + list(net.named_buffers()))
    return (type(net).__module__, type(net).__qualname__, shapes, repr(net))


class TermLosses:
    """The loss functions of ``problem``'s terms for ``net``.

    Args:
        method: ``"auto"``, a registered derivative method, or ``"tune"`` (timed per term on
            ``tune_batch``, the first step's indices, on ``device`` in ``dtype``; cached in
            :data:`TUNED_METHODS`).
        loss_params: what each function passes the network as ``theta`` when called (see module doc);
            ``leaves`` the tensors a tuning backward differentiates.
        coefficient_names: the problem's trainable coefficients, in order.
        attention: pointwise residual attention; its terms record each call's residuals in
            :attr:`residuals` (term -> ``(r, index)``) for the attention update after the step.
    """

    def __init__(self, problem: Problem, net: nn.Module, method: str, *, loss_params: Any,
                 leaves: Sequence[Tensor], coefficient_names: Sequence[str], coefficients: Optional[Tensor],
                 device: torch.device, dtype: torch.dtype, attention: Optional[ResidualAttention] = None,
                 tune_batch: Optional[Sequence[Optional[Tensor]]] = None) -> None:
        self.problem, self.net = problem, net
        self.device, self.dtype = device, dtype
        self.coefficient_names = list(coefficient_names)
        self.attention = attention
        self.residuals: dict[int, tuple[Tensor, Optional[Tensor]]] = {}
        self.compiled = False
        #: term name -> derivative method its loss uses.
        self.methods = self._choose(method, loss_params, leaves, coefficients, tune_batch)
        self.fns: list[LossFn] = []

    def _choose(self, method: str, loss_params: Any, leaves: Sequence[Tensor], coefficients: Optional[Tensor],
                tune_batch: Optional[Sequence[Optional[Tensor]]]) -> dict[str, str]:
        problem, net = self.problem, self.net
        if method == "auto":  # resolved per term, so what ran is what gets recorded
            return {t.name: choose_method(net, None, parse_requests(t.requests, problem.coords),
                                          n_points=min(t.n_points, t.batch_size or t.n_points)) for t in problem.terms}
        if method != "tune":
            return {t.name: method for t in problem.terms}
        batch = tune_batch if tune_batch is not None else [None] * len(problem.terms)
        chosen = {}
        for term, index in zip(problem.terms, batch):
            key = (network_key(net), str(self.device), self.dtype, term.requests, len(term.points),
                   term.n_points if index is None else index.numel())
            if key not in TUNED_METHODS:
                def loss(m: str, term=term, index=index) -> Tensor:
                    return term.loss(net, problem.coords, index, method=m, theta=loss_params,
                                     coef=self.coefficient_views(coefficients), ensemble=problem.ensemble is not None)

                TUNED_METHODS[key] = fastest_method(loss, list(leaves))
            chosen[term.name] = TUNED_METHODS[key].method
        return chosen

    def coefficient_views(self, coefficients: Optional[Tensor]) -> Optional[dict[str, Tensor]]:
        """Name -> coefficient as the residual sees it: a scalar, or ``[S, 1]`` for an ensemble. Made per
        call (views), so every graph owns its own."""
        if coefficients is None:
            return None
        if self.problem.ensemble is None:
            return {n: coefficients[i] for i, n in enumerate(self.coefficient_names)}
        return {n: coefficients[:, i:i + 1] for i, n in enumerate(self.coefficient_names)}

    def build(self, compiled: bool) -> None:
        """(Re)make every term's function, each compiled on its own when ``compiled``."""
        self.compiled = compiled
        self.fns = [self._make(k, self.methods[t.name]) for k, t in enumerate(self.problem.terms)]

    def _make(self, k: int, method: str) -> LossFn:
        term = self.problem.terms[k]
        coords, net, ensemble = self.problem.coords, self.net, self.problem.ensemble is not None
        views = self.coefficient_views
        if self.attention is not None and k in self.attention.terms:
            attention, residuals = self.attention, self.residuals

            def attended(theta: Any, coefficients: Optional[Tensor], index: Optional[Tensor]) -> Tensor:
                r = term.residual_values(net, coords, index, method=method, theta=theta, coef=views(coefficients))
                residuals[k] = (r.detach(), index)
                return attention.loss(k, r, index).reshape(-1)

            return attended

        def loss_fn(theta: Any, coefficients: Optional[Tensor], index: Optional[Tensor]) -> Tensor:
            coef = views(coefficients)
            return term.loss(net, coords, index, method=method, theta=theta, ensemble=ensemble, coef=coef).reshape(-1)

        return compiled_copy(loss_fn, f"loss_{term.name}") if self.compiled else loss_fn

    def __call__(self, params: Any, coefficients: Optional[Tensor],
                 indices: Optional[Sequence[Optional[Tensor]]] = None) -> list[Tensor]:
        """Every term's unweighted loss, each ``[S]``."""
        return [fn(params, coefficients, None if indices is None else indices[k]) for k, fn in enumerate(self.fns)]
