"""Gradient-conflict aggregation: the update direction of a step from the per-term gradients ``G[S, K, P]``.

:mod:`.gram` forms the Gram matrices ``G Gᵀ`` (fused kernel, float64) and combines rows; :mod:`.solvers` holds
the math, one pure batched function per method, ``<name>_weights(gram, **hyper) -> w`` with ``gram``
``[S, K, K]`` and ``w`` ``[S, K]`` such that the direction is ``sum_k w[s, k] g_{s,k}`` (fixed iteration counts,
no host sync); :mod:`.small_linalg` the sync-free small-matrix linear algebra they share. The schemes that train
with them are in :mod:`fastpinn.schemes.aggregators`.
"""

from . import solvers
from .gram import combine_rows, term_gram
from .solvers import (METHODS, aligned_mtl_weights, cagrad_weights, config_weights, dcgd_weights,
                      imtl_g_weights, mean_weights, mgda_weights, nash_mtl_weights, pcgrad_weights,
                      upgrad_weights)

__all__ = ["solvers", "term_gram", "combine_rows", "METHODS", "aligned_mtl_weights", "cagrad_weights",
           "config_weights", "dcgd_weights", "imtl_g_weights", "mean_weights", "mgda_weights", "nash_mtl_weights",
           "pcgrad_weights", "upgrad_weights"]
