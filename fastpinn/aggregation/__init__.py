"""Gradient-conflict aggregation: methods that choose the update direction from the per-term gradients G[S, K, P].

:mod:`.solvers` holds the math, one pure batched function per method, ``<name>_weights(gram, **hyper) -> w``
with ``gram`` [S, K, K] = G G^T and ``w`` [S, K] such that the direction is ``sum_k w[s, k] g_{s,k}``;
:mod:`.small_linalg` the sync-free small-matrix linear algebra they share.
"""

from .solvers import (METHODS, aligned_mtl_weights, cagrad_weights, config_weights, dcgd_weights,
                      imtl_g_weights, mean_weights, mgda_weights, nash_mtl_weights, pcgrad_weights,
                      upgrad_weights)

__all__ = ["METHODS", "aligned_mtl_weights", "cagrad_weights", "config_weights", "dcgd_weights", "imtl_g_weights",
           "mean_weights", "mgda_weights", "nash_mtl_weights", "pcgrad_weights", "upgrad_weights"]
