"""Each loss term of a problem as a function of the parameters: the derivative method it uses (given,
chosen per term, or tuned by timing on this device) and, when asked, its own ``torch.compile`` graph.

A term's function is ``fn(theta, coefficients, index) -> [S]``: ``theta`` what the network computes with
(its per-layer leaves, or ``None`` for a user module's own parameters), ``coefficients`` the trainable
coefficients ``[C]`` (``[S, C]``), ``index`` the term's mini-batch (``None``: every point).

Terms evaluated on the same point sets (equal tensors, whole batch, e.g. a system's momentum and continuity
equations) share one evaluation: the network and the union of their derivative requests are computed once
per step and each term's residual reads its fields from it (:func:`shared_point_groups`); on a small problem
whose derivatives are nested autograd, terms on different points share one too, over their concatenated
points (:data:`MERGE_POINTS`), and under ``auto`` a values-only term joins a small group that reads derivatives
(any method) where the cost model prices one evaluation below two (:func:`fastpinn.method_costs.join_pays`). Their losses then hang off one autograd graph, so one backward of the weighted
sum walks the network once; per-term backwards (a gradient-statistic scheme's update step) retain it
(:attr:`TermLosses.shared`). Compiled losses keep one graph per term. A group's derivative evaluation is planned
once per build (:class:`~fastpinn.derivatives.PreparedDerivatives`), not per step.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .compile_policy import compiled_copy
from .method_costs import join_pays
from .derivatives import (DerivIndex, Fields, MethodChoice, PreparedDerivatives, choose_method, derivatives,
                          fastest_method, method_names, parse_requests)
from .network import MLP
from .problem import Problem, Term
from .rba import ResidualAttention

__all__ = ["derivative_method_choices", "DERIVATIVE_METHODS", "TUNED_METHODS", "network_key", "TermLosses",
           "shared_point_groups", "MERGE_POINTS", "MERGED_METHODS", "VALUE_CHANNEL_METHODS"]

LossFn = Callable[[Any, Optional[Tensor], Optional[Tensor]], Tensor]
GroupFn = Callable[[Any, Optional[Tensor]], list[Tensor]]
#: ``(group, k, the group's distinct points, k's new points) -> bool`` (:func:`shared_point_groups`).
JoinRule = Callable[[list[int], int, int, int], bool]


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


#: A group also gathers terms on *different* point sets into one evaluation (their points concatenated) while
#: it holds at most this many points and its method is one of :data:`MERGED_METHODS`. Nested autograd pays a
#: fixed cost per evaluation -- a chain of ``autograd.grad`` calls, one per derivative order and output column,
#: and a backward through each -- that bounds a small problem (Euler beam, 10 + 4 points, 4th order: 5 chains
#: a step in 3 evaluations -> 1; DeepXDE's design of one batch for every term). A jet evaluation is one forward
#: pass whatever the orders, and larger sets pay for the union of requests on every point, so those keep their
#: own evaluation (the paper's problems: unchanged, bit for bit). ``"taylor"`` is one compiled call whatever the
#: orders, but that call's fixed cost (dispatch, autograd node, a backward) is all a few points cost: the Euler
#: beam's derivative terms share one call as they shared one autograd chain.
MERGE_POINTS = 256
MERGED_METHODS = ("autograd", "func", "taylor")
#: Merged methods whose evaluation carries the value as one channel of the same call: a values-only term joins
#: their group too (its own evaluation would be a call and a backward of its own; Euler beam: 2 Taylor calls a
#: step -> 1). Nested autograd keeps values-only terms apart (tests/test_shared_eval.py).
VALUE_CHANNEL_METHODS = ("taylor",)


def _equal(p: Tensor, q: Tensor) -> bool:
    return p is q or (p.shape == q.shape and p.dtype == q.dtype and p.device == q.device and bool(torch.equal(p, q)))


def _blocks_of(terms: Sequence[Term]) -> tuple[list[Tensor], list[list[int]]]:
    """The distinct point sets of ``terms`` in order of appearance, and per term the index of each of its sets."""
    blocks: list[Tensor] = []
    where: list[list[int]] = []
    for term in terms:
        mine = []
        for p in term.points:
            i = next((i for i, b in enumerate(blocks) if _equal(p, b)), None)
            if i is None:
                blocks.append(p)
                i = len(blocks) - 1
            mine.append(i)
        where.append(mine)
    return blocks, where


def _values_only(term: Term) -> bool:
    """Whether ``term`` reads the network's value alone (its own evaluation is one forward pass)."""
    return all(r == "u" or r == () for r in term.requests)


def shared_point_groups(terms: Sequence[Term], methods: Union[Sequence[str], Callable[[list[int]], Optional[str]]],
                        alone: Sequence[bool] = (), merge_points: int = MERGE_POINTS,
                        join_values: Optional[JoinRule] = None) -> list[list[int]]:
    """Indices of ``terms`` partitioned into groups that share one evaluation, in term order: terms trained on
    every point each step (one batch) with one derivative method, on equal point sets -- or on any while the
    group's distinct points number at most ``merge_points``, its method is in :data:`MERGED_METHODS` and the
    joining term reads a derivative (a values-only term's own evaluation is one forward pass: merging would
    save little and put the group's derivative chain on its points too) with that method on its own -- or,
    the group already reading derivatives with that nested method, with any method (``auto`` on a small
    problem: a 4th-order term's autograd chain takes the low-order boundary terms that alone would be fused,
    one derivative evaluation a step instead of two; measured faster on the Euler beam, see
    ``bench/results/deepxde-suite-merged-cpu-intel-xeon-2c-2026-12-06.md``). A group by a method of
    :data:`VALUE_CHANNEL_METHODS` (``"taylor"``) takes values-only terms on other points too.

    ``methods``: each term's method, or a callable giving the method of a group of term indices (``None``: the
    terms cannot share one), e.g. ``"auto"``'s choice for the union of their requests.
    ``alone[k]``: term ``k`` keeps its own evaluation (e.g. pointwise attention records its residual).
    ``join_values(group, k, points, new)``: whether the values-only term ``k`` (``new`` points of its own) joins
    ``group`` after all, a group that reads derivatives on ``points`` distinct points (``points + new`` at most
    ``merge_points``); ``auto`` asks its cost model (:func:`fastpinn.method_costs.join_pays`: on a small
    problem an evaluation's fixed cost outweighs a few more points in the group's: the Euler beam's ``u0``
    into the nested-autograd chain, the tiny 1-D Poisson's ends into the fused PDE evaluation). Default: never.
    A term on paired point sets (:func:`~fastpinn.problem.periodic`) keeps its own too: sharing the paper's
    Allen-Cahn pair ``bc_u``/``bc_ux`` (200 + 200 points beside a 4,096-point PDE batch) would gain a few
    percent and change that run's numbers in the last bits (``tests/test_backward.py`` pins it bit for bit
    against a loop of per-term losses)."""
    if callable(methods):
        method_of = methods
    else:
        names = list(methods)

        def method_of(group: list[int]) -> Optional[str]:
            return names[group[0]] if all(names[k] == names[group[0]] for k in group) else None

    def _nested_already(group: list[int], method: str) -> bool:
        # The group already pays a nested chain for a derivative read on its own: a low-order term on a
        # few more points extends that chain instead of paying an evaluation of its own (Euler beam under
        # auto: 2 derivative evaluations a step -> 1, as fast as autograd by hand).
        return method_of(group) == method and any(not _values_only(terms[j]) for j in group)

    groups: list[tuple[list[int], Optional[list[Tensor]]]] = []  # terms, distinct point sets (None: alone)
    for k, term in enumerate(terms):
        if (k < len(alone) and alone[k]) or term.n_batches != 1 or len(term.points) > 1:
            groups.append(([k], None))
            continue
        for group, blocks in groups:
            if blocks is None:
                continue
            method = method_of(group + [k])
            if method is None:
                continue
            new = [p for p in term.points if not any(_equal(p, b) for b in blocks)]
            points, added = sum(b.shape[-2] for b in blocks), sum(p.shape[-2] for p in new)
            small = points + added <= merge_points
            if not new or (small and method in MERGED_METHODS
                           and (not _values_only(term) or method in VALUE_CHANNEL_METHODS)
                           and (method_of([k]) == method or _nested_already(group, method))) \
                    or (small and join_values is not None and _values_only(term)
                        and any(not _values_only(terms[j]) for j in group) and join_values(group, k, points, added)):
                group.append(k)
                blocks.extend(new)
                break
        else:
            groups.append(([k], _blocks_of([term])[0]))
    return [g for g, _ in groups]


def _union(requests: Sequence[Sequence[DerivIndex]]) -> list[DerivIndex]:
    out: list[DerivIndex] = []
    for wanted in requests:
        out.extend(w for w in wanted if w not in out)
    return out


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
                 tune_batch: Optional[Sequence[Optional[Tensor]]] = None, own_evaluation: Sequence[int] = ()) -> None:
        self.problem, self.net = problem, net
        #: Terms whose points change during training (resampling): a group's concatenated points would go stale.
        self.own_evaluation = frozenset(own_evaluation)
        self.device, self.dtype = device, dtype
        self.coefficient_names = list(coefficient_names)
        self.attention = attention
        self.residuals: dict[int, tuple[Tensor, Optional[Tensor]]] = {}
        self.compiled = False
        #: Evaluate through derivative plans made once per build (:class:`PreparedDerivatives`); off: through
        #: :func:`~fastpinn.derivatives.derivatives` per call (the reference path; equal results bit for bit).
        self.prepared = True
        self._plan: Optional[list[list[int]]] = None  # the groups "auto" chose its methods for
        #: term name -> derivative method its loss uses.
        self.methods = self._choose(method, loss_params, leaves, coefficients, tune_batch)
        self.fns: list[LossFn] = []
        #: ``(terms, fn)`` per group of terms sharing one evaluation (:func:`shared_point_groups`; eager only).
        self.groups: list[tuple[list[int], Optional[GroupFn]]] = []

    def _choose(self, method: str, loss_params: Any, leaves: Sequence[Tensor], coefficients: Optional[Tensor],
                tune_batch: Optional[Sequence[Optional[Tensor]]]) -> dict[str, str]:
        problem, net = self.problem, self.net
        if method == "auto":  # resolved per term (per group of terms sharing points), so what ran is recorded
            def union_method(group: list[int]) -> str:
                # A group evaluates the network once over its (equal) point set: the cost model's point count.
                points = max(min(t.n_points, t.batch_size or t.n_points) for t in (problem.terms[k] for k in group))
                return choose_method(net, None, self._requests(group), n_points=points)

            def values_join(group: list[int], k: int, points: int, added: int) -> bool:
                # Priced for an MLP (the cost model's width); a user module's values-only term keeps its forward.
                if not isinstance(net, MLP):
                    return False
                order = max((len(w) for w in self._requests(group + [k])), default=0)
                members = problem.ensemble or 1  # an ensemble evaluates every member's points (as choose_method)
                return join_pays(union_method(group + [k]), order, net.width, points * members, union_method([k]),
                                 added * members)

            self._plan = shared_point_groups(problem.terms, union_method, self._alone(), join_values=values_join)
            return {problem.terms[k].name: union_method(group) for group in self._plan for k in group}
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

    def _alone(self) -> list[bool]:
        """Terms that keep their own evaluation: those under pointwise attention (they record residuals) and
        those whose points change (``own_evaluation``)."""
        return [(self.attention is not None and k in self.attention.terms) or k in self.own_evaluation
                for k in range(len(self.problem.terms))]

    def _requests(self, group: Sequence[int]) -> list[DerivIndex]:
        coords = self.problem.coords
        return _union([parse_requests(self.problem.terms[k].requests, coords) for k in group])

    @property
    def shared(self) -> bool:
        """Whether some terms' losses share one autograd graph (a per-term backward must retain it)."""
        return any(fn is not None for _, fn in self.groups)

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
        terms = self.problem.terms
        self.fns = [self._make(k, self.methods[t.name]) for k, t in enumerate(terms)]
        # Compiled: one graph per term as before (a compiled backward frees its buffers, so it cannot be
        # walked once per term through a shared graph).
        if compiled:
            groups = [[k] for k in range(len(terms))]
        elif self._plan is not None:
            groups = self._plan
        else:
            groups = shared_point_groups(terms, [self.methods[t.name] for t in terms], self._alone())
        self.groups = [(g, self._make_group(g) if len(g) > 1 else None) for g in groups]

    def _evaluator(self, requests: Sequence[Any], method: str) -> Union[PreparedDerivatives, Callable[..., Fields]]:
        """``(x, theta) -> Fields`` of ``requests`` by ``method``: planned once (:class:`PreparedDerivatives`), or
        through :func:`~fastpinn.derivatives.derivatives` per call when :attr:`prepared` is off."""
        coords, net = self.problem.coords, self.net
        if self.prepared:
            return PreparedDerivatives(net, coords, requests, method)
        return lambda x, theta: derivatives(net, x, coords=coords, requests=requests, method=method, theta=theta)

    def _make_group(self, group: list[int]) -> GroupFn:
        """One evaluation of the network and the union of the group's requests on its distinct point sets
        (concatenated when several), every term's loss from its slices of it."""
        terms = [self.problem.terms[k] for k in group]
        coords = self.problem.coords
        wanted = [tuple(coords[i] for i in index) for index in self._requests(group)]  # by coordinate names
        evaluate = self._evaluator(wanted, self.methods[terms[0].name])
        ensemble = self.problem.ensemble is not None
        views = self.coefficient_views
        blocks, where = _blocks_of(terms)
        x = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-2)
        dim = x.dim() - 2  # the points' dimension, in x and in every field
        starts = [sum(b.shape[-2] for b in blocks[:i]) for i in range(len(blocks))]

        def per_call_blocks(theta: Any) -> list[Fields]:  # the reference path (prepared off)
            f = evaluate(x, theta)
            values = {f.index(name): f[name] for name in wanted}
            return [Fields({i: v.narrow(dim, lo, b.shape[-2]) for i, v in values.items()}, coords, b)
                    for b, lo in zip(blocks, starts)]

        def group_losses(theta: Any, coefficients: Optional[Tensor]) -> list[Tensor]:
            coef = views(coefficients)
            if len(blocks) == 1:
                fields = [evaluate(x, theta)]
            elif isinstance(evaluate, PreparedDerivatives):
                fields = evaluate.blocks(x, theta, blocks)
            else:
                fields = per_call_blocks(theta)
            if coef:
                for g in fields:
                    g.coef = coef
            return [t.mean_square(t.residual_of([fields[i] for i in mine]), ensemble).reshape(-1)
                    for t, mine in zip(terms, where)]

        return group_losses

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
        """Every term's unweighted loss, each ``[S]``; a group of terms sharing points in one evaluation when
        the step trains on all of their points."""
        out: list[Optional[Tensor]] = [None] * len(self.fns)
        for group, shared in self.groups:
            if shared is not None and (indices is None or all(indices[k] is None for k in group)):
                for k, loss in zip(group, shared(params, coefficients)):
                    out[k] = loss
                continue
            for k in group:
                out[k] = self.fns[k](params, coefficients, None if indices is None else indices[k])
        return out  # type: ignore[return-value]
