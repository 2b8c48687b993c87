"""Gradient aggregation: the update direction of a step from the per-term gradients ``G[S, K, P]``.

:mod:`~fastpinn.aggregation.gram` forms the Gram matrices ``G Gᵀ`` (fused kernel, float64) and combines rows;
:mod:`~fastpinn.aggregation.solvers` turns a Gram matrix into the ``K`` weights of each method (pure functions,
batched over the ensemble, fixed iteration counts, no host sync). The schemes that use them for training are in
:mod:`fastpinn.schemes.aggregators`.
"""

from . import solvers
from .gram import combine_rows, term_gram

__all__ = ["solvers", "term_gram", "combine_rows"]
