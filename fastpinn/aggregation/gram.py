"""The inputs and output of an aggregator: the Gram matrices of the per-term gradients, and the direction.

Every method of :mod:`fastpinn.aggregation.solvers` reads only ``gram[S, K, K] = G Gᵀ`` and returns weights
``w[S, K]``; the direction is ``d_s = sum_k w[s, k] G[s, k]``. So a step reads ``G`` twice (the Gram and the
combination), each a single pass: the Gram by the fused kernel :func:`fastpinn.ops.grad_gram`, the combination
by one batched product.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import ops

__all__ = ["term_gram", "combine_rows", "scaled_gram"]


def term_gram(G: Tensor, backend: ops.Backend = "auto") -> Tensor:
    """``G[S, K, P]`` (or ``[K, P]``) -> ``gram[S, K, K]`` (or ``[K, K]``) float64, in one pass over ``G``."""
    return ops.grad_gram(G, backend=backend)


def scaled_gram(gram: Tensor, scale: Tensor) -> Tensor:
    """The Gram matrix of the rows ``scale[s, k] G[s, k]``: ``D gram D`` with ``D = diag(scale)``
    (``gram[S, K, K]``, ``scale[S, K]``), without touching ``G``."""
    return gram * scale.unsqueeze(2) * scale.unsqueeze(1)


def combine_rows(G: Tensor, weights: Tensor) -> Tensor:
    """The direction ``sum_k weights[s, k] G[s, k]``: ``G[S, K, P], weights[S, K] -> [S, P]`` in ``G``'s dtype."""
    return torch.bmm(weights.to(G.dtype).unsqueeze(1), G).squeeze(1)
