"""Per-term traces of the neural tangent kernel's diagonal blocks, for NTK weighting (Wang, Yu & Perdikaris 2022).

For term ``j`` with residuals ``r_j(x_i)`` at its ``N_j`` points, ``K_jj`` is the Gram matrix of the
per-point parameter gradients, and its trace is

    Tr(K_jj) = sum_i ||grad_theta r_j(x_i)||^2

-- the sum of per-point squared gradient norms, *not* ``||grad_theta sum_i r_j(x_i)||^2`` (the squared norm
of one summed gradient, which several libraries compute instead and which cancels between points).

Method and cost: the residuals of the (sub)sampled ``n`` points are computed once, with the trainer's
derivative machinery, and one *batched* backward (``torch.autograd.grad(..., is_grads_batched=True)``,
i.e. ``vmap`` over the backward pass) gives the per-point gradients (``m`` residual components per point)
of a chunk of points at once; their squares are summed per term. A batched backward of
``M`` outputs runs each output's backward through the whole ``M``-point graph (~``M^2`` arithmetic), so
the ``n`` points go in chunks of ``chunk`` (default 16): ``n / chunk`` batched backwards of ``chunk * m``
outputs, memory ``chunk * m * S * P`` numbers. Measured on 1 CPU thread (Poisson, P = 7851, 128 points per
term): one batch of 128 took 227 ms, chunks of 4 / 8 / 16 / 32 took 217 / 147 / 111 / 145 ms. The default
``subsample`` of :class:`fastpinn.NTK` keeps ``n`` small; the subsampled sum is scaled by ``N / n``,
an unbiased estimate of the full trace (points drawn without replacement).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from .derivatives import derivatives
from .network import MLP

__all__ = ["term_residuals", "term_traces", "traces_function"]


def term_residuals(term, net, coords: Sequence[str], index: Optional[Tensor] = None, *,
                   theta: Optional[Tensor] = None, method: str = "auto") -> Tensor:
    """The residual ``r`` that :meth:`fastpinn.problem.Term.loss` squares and averages:
    ``[N', ...]`` for one network, ``[S, N', ...]`` for an ensemble (``N'``: all points, or ``index``)."""
    return term.residual_values(net, coords, index, method=method, theta=theta)


def term_traces(terms: Sequence, net, coords: Sequence[str], *, theta: Optional[Tensor] = None,
                subsample: Optional[int] = None, generator: Optional[torch.Generator] = None,
                per_point: bool = False, method: str = "auto", chunk: int = 16) -> Tensor:
    """``traces[S, K]``: ``Tr(K_jj)`` of every term (``per_point``: divided by the term's ``N_j``).

    Args:
        terms: the problem's terms (``problem.terms``), ``K`` of them.
        net: the :class:`~fastpinn.network.MLP`; ``theta`` (``[P]`` or ``[S, P]``) defaults to ``net.theta``.
        coords: the problem's coordinate names.
        subsample: at most this many points per term (drawn without replacement from ``generator``, on the
            device: no host sync); ``None`` uses all points.
        per_point: the per-point mean of the diagonal instead of the trace.
        method: derivative method, as for the trainer.
        chunk: points per batched backward (memory ``chunk * m * S * P``; cost ~ ``n * chunk``).

    Returns:
        ``[S, K]`` (``S = 1`` for one network), detached, in ``theta``'s dtype.
    """
    th = net.theta if theta is None else theta
    if not th.requires_grad:
        th = th.detach().requires_grad_(True)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    if subsample is not None and (isinstance(subsample, bool) or not isinstance(subsample, int) or subsample < 1):
        raise ValueError(f"subsample must be None or an integer >= 1, got {subsample!r}")
    members = th.shape[0] if th.dim() == 2 else 1
    out = []
    for term in terms:
        n_all = term.n_points
        index = None
        if subsample is not None and subsample < n_all:
            index = torch.randperm(n_all, generator=generator, device=th.device)[:subsample]
        n = n_all if index is None else subsample
        if index is None:
            index = torch.arange(n_all, device=th.device)
        sq = torch.zeros(members, dtype=th.dtype, device=th.device)
        # Chunks of `chunk` points: a batched backward of M outputs through a graph of M outputs costs ~M^2,
        # so the points go in chunks (cost ~n * chunk) rather than all at once.
        for part in index.split(chunk):
            r = term_residuals(term, net, coords, part, theta=th, method=method)
            flat = r.reshape(members, -1)
            M = flat.shape[1]
            # One-hot cotangents e_k for every output k of every member at once: the rows of the batched
            # backward are the per-point gradients (members are independent: each row is its own gradient).
            basis = torch.eye(M, dtype=r.dtype, device=r.device).unsqueeze(1).expand(M, members, M)
            (jac,) = torch.autograd.grad(flat, th, grad_outputs=basis, is_grads_batched=True)
            sq = sq + jac.reshape(M, members, -1).pow(2).sum(dim=(0, 2))  # [S]
        trace = sq * (n_all / n)
        out.append(trace / n_all if per_point else trace)
    return torch.stack(out, dim=1).detach()


def traces_function(problem: Any, net: nn.Module, theta: Tensor, scheme: Any, generator: torch.Generator, *,
                    coefficients: bool = False) -> Callable[[], Tensor]:
    """What an NTK scheme's Trainer calls each weight update: ``traces()`` ``[S, K]`` of ``problem``'s terms
    (:func:`term_traces`) on a subsample of ``scheme.subsample`` points drawn from ``generator``.
    ``coefficients``: whether the problem trains coefficients (refused, as is a network other than an MLP)."""
    if not isinstance(net, MLP) or coefficients:
        raise ValueError("the NTK scheme computes per-point parameter gradients of a fastpinn.MLP without "
                         "trainable coefficients; use another scheme for this network or problem")

    def traces() -> Tensor:
        return term_traces(problem.terms, net, problem.coords, theta=theta, subsample=scheme.subsample,
                           per_point=scheme.per_point, generator=generator)

    return traces
