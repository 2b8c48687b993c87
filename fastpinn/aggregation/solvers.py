"""PLACEHOLDER -- the lead replaces this file with branch ``aggsolvers``'s at merge.

The contract every solver keeps (the schemes in :mod:`fastpinn.schemes.aggregators` call them by name):
``<name>_weights(gram: Tensor, **hyper) -> Tensor`` with ``gram[S, K, K]`` float64 (``S`` ensemble members);
returns ``w[S, K]`` such that the update direction is ``d_s = sum_k w[s, k] g_{s, k}``; batched over ``S``,
tensor operations only (no host sync). Names: pcgrad_weights(gram, order), mgda_weights(gram, iters=),
cagrad_weights(gram, c=0.5, iters=), imtl_g_weights(gram), aligned_mtl_weights(gram),
nash_mtl_weights(gram, iters=), upgrad_weights(gram), config_weights(gram), dcgd_weights(gram, variant=),
mean_weights(gram).

Only :func:`mean_weights` and :func:`pcgrad_weights` are here, for the tests of this branch.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mean_weights", "pcgrad_weights"]


def mean_weights(gram: Tensor) -> Tensor:
    """``1 / K`` for every term: the mean gradient."""
    S, K, _ = gram.shape
    return torch.full((S, K), 1.0 / K, dtype=gram.dtype, device=gram.device)


def pcgrad_weights(gram: Tensor, order: Tensor) -> Tensor:
    """PCGrad (Yu et al. 2020, Algorithm 1) in weight space: each ``g_i`` is projected, in the member's
    ``order`` (``[S, K]`` permutations; ``i`` itself skipped), off every ``g_j`` it conflicts with
    (``g_i^PC . g_j < 0``: ``g_i^PC -= (g_i^PC . g_j) / |g_j|^2 g_j``); the direction is ``sum_i g_i^PC``.
    ``g_i^PC = sum_m A[i, m] g_m`` is tracked by its coefficients, so only the Gram matrix is read."""
    S, K, _ = gram.shape
    eye = torch.eye(K, dtype=gram.dtype, device=gram.device)
    A = eye.expand(S, K, K).clone()  # A[s, i, :]: coefficients of g_i^PC
    diag = torch.diagonal(gram, dim1=1, dim2=2)  # [S, K]
    for pos in range(K):
        j = order[:, pos]  # [S]
        gj = torch.gather(gram, 2, j.view(S, 1, 1).expand(S, K, 1)).squeeze(2)  # gram[s, :, j] -> [S, K]
        dots = torch.bmm(A, gj.unsqueeze(2)).squeeze(2)  # g_i^PC . g_j -> [S, K]
        nj = torch.gather(diag, 1, j.view(S, 1))  # [S, 1]
        not_self = torch.arange(K, device=gram.device).unsqueeze(0) != j.unsqueeze(1)
        coef = torch.where((dots < 0) & not_self & (nj > 0), dots / torch.where(nj > 0, nj, 1.0), 0.0)
        A = A - coef.unsqueeze(2) * eye[j].unsqueeze(1)
    return A.sum(dim=1)
