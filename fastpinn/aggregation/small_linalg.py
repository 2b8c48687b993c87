"""Batched float64 linear algebra on stacks of small (K <= ~10) symmetric matrices, without host syncs.

``torch.linalg.eigh``, ``pinv``, ``svd`` and ``lstsq`` check their LAPACK/cuSOLVER status on the host (a
device-to-host copy per call on CUDA), so the gradient-conflict solvers (:mod:`.solvers`) use only what is
here: elementwise ops, ``bmm``, indexing with index tensors built from static shapes, and
``torch.linalg.solve_ex`` (no error check unless asked). Every function is batched over leading dimensions.

* :func:`symmetric_eig` -- cyclic Jacobi with a fixed number of sweeps (parallel round-robin ordering: K/2
  disjoint rotations per round, K-1 rounds per sweep). Jacobi converges quadratically once the off-diagonal
  part is small; :func:`default_sweeps` gives the count, measured (condition numbers up to 1e14) plus one.
* :func:`pinv_apply` -- ``A^+ b`` from that decomposition, with ``torch.linalg.pinv``'s default cut-off
  (eigenvalues below ``K * eps * max|eigenvalue|`` count as zero).
* :func:`subset_masks` -- the 2^K subsets of K indices as a boolean table, for solving small
  inequality-constrained problems exactly by enumerating their active sets.
* :func:`robust_quadratic` -- ``x^T A x`` plus a bound on its rounding error, so that a candidate whose
  linear solve blew up (a singular sub-matrix) can never look better than it is.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import Tensor

__all__ = ["as_gram", "subset_masks", "symmetric_eig", "default_sweeps", "pinv_apply", "robust_quadratic", "solve"]

EPS64 = torch.finfo(torch.float64).eps


def as_gram(gram: Tensor) -> Tensor:
    """``gram`` [S, K, K] as a float64 tensor on its device, symmetrised (shape errors are ``ValueError``)."""
    if not isinstance(gram, Tensor) or gram.dim() != 3 or gram.shape[-1] != gram.shape[-2] or gram.shape[-1] < 1:
        shape = tuple(gram.shape) if isinstance(gram, Tensor) else type(gram).__name__
        raise ValueError(f"gram must be a tensor of shape [S, K, K] with K >= 1, got {shape}")
    a = gram.detach().to(torch.float64)
    return 0.5 * (a + a.mT)


# Constant index tables are built once per (size, device) and cached: the first call (a warm-up, outside any
# CUDA-graph capture) makes them, later calls -- captured ones included -- copy nothing from the host.
@functools.lru_cache(maxsize=None)
def subset_masks(k: int, device: torch.device) -> Tensor:
    """All 2^k subsets of ``range(k)`` as a bool table [2^k, k] (row ``m`` holds the bits of ``m``)."""
    bits = torch.arange(2 ** k).unsqueeze(1) >> torch.arange(k).unsqueeze(0)
    return (bits & 1).bool().to(device)


def solve(a: Tensor, b: Tensor) -> Tensor:
    """``a^-1 b`` batched, by LU without the host-side status check (singular ``a`` gives inf/NaN, not an error)."""
    return torch.linalg.solve_ex(a, b)[0]


def robust_quadratic(a: Tensor, x: Tensor) -> Tensor:
    """``x^T a x`` over the last dimension of ``x`` [..., K] (``a`` [..., K, K] broadcasts), plus ``2 K eps |x|^T|a||x|``.

    The added term bounds the rounding error of the computed quadratic form (Higham, Thm 3.5: a dot product of
    length K errs by at most ``K eps`` times the sum of the absolute products), so the result is an upper bound
    of the exact value. Non-finite values become ``+inf``.
    """
    ax = (a @ x.unsqueeze(-1)).squeeze(-1)
    value = (x * ax).sum(-1)
    bound = (x.abs() * (a.abs() @ x.abs().unsqueeze(-1)).squeeze(-1)).sum(-1)
    out = value + 2 * x.shape[-1] * EPS64 * bound
    return torch.where(torch.isfinite(out), out, torch.full_like(out, float("inf")))


@functools.lru_cache(maxsize=None)
def _round_robin(n: int) -> tuple[tuple[list[int], list[int]], ...]:
    """The n-1 rounds of a round-robin tournament of n (even) players: (p, q) index lists with p < q."""
    rounds = []
    others = list(range(1, n))
    for r in range(n - 1):
        order = [0] + others[r:] + others[:r]
        ps, qs = [], []
        for k in range(n // 2):
            i, j = order[k], order[n - 1 - k]
            ps.append(min(i, j))
            qs.append(max(i, j))
        rounds.append((ps, qs))
    return tuple(rounds)


@functools.lru_cache(maxsize=None)
def _rotation_indices(n: int, device: torch.device) -> tuple[tuple[Tensor, Tensor], ...]:
    """Per round, flat indices into an n x n matrix: where to read (a_pp, a_qq, a_pq) and write (c, c, s, -s)."""
    out = []
    for ps, qs in _round_robin(n):
        p, q = torch.tensor(ps), torch.tensor(qs)
        read = torch.cat([p * n + p, q * n + q, p * n + q])
        write = torch.cat([p * n + p, q * n + q, p * n + q, q * n + p])
        out.append((read.to(device), write.to(device)))
    return tuple(out)


def default_sweeps(k: int) -> int:
    """Jacobi sweeps for order k: one more than the most that reached 1e-14 (reconstruction and off-diagonal,
    relative) on random matrices with condition 1 to 1e14 -- k sweeps up to k = 7, then 7 (k = 8), 8 (k = 9..11),
    9 (k = 12)."""
    return min(k, 9) + 1


def symmetric_eig(a: Tensor, sweeps: Optional[int] = None) -> tuple[Tensor, Tensor]:
    """Eigenvalues [..., K] and eigenvectors [..., K, K] (columns) of symmetric ``a`` [..., K, K], by Jacobi.

    Fixed ``sweeps`` (default :func:`default_sweeps`): no data-dependent control flow. A sweep applies every one
    of the K(K-1)/2 rotations once, in K-1 rounds of disjoint pairs; a round is one gather, a dozen elementwise
    ops, one scatter and three small matmuls. Eigenvalues are not sorted. Accuracy: Jacobi is backward stable
    and, for a positive semi-definite matrix, computes even the small eigenvalues to high relative accuracy
    (Demmel & Veselic 1992); the test suite checks ``V diag(L) V^T = a`` and ``V^T V = I`` to 1e-13 relative.
    """
    batch = a.shape[:-2]
    k = a.shape[-1]
    sweeps = default_sweeps(k) if sweeps is None else sweeps
    n = k + (k % 2)  # odd K: pad with an isolated zero row/column, which no rotation ever touches
    work = torch.zeros(*batch, n, n, dtype=a.dtype, device=a.device)
    work[..., :k, :k] = a
    work = work.reshape(-1, n, n)
    flat_batch = work.shape[0]
    vecs = torch.eye(n, dtype=a.dtype, device=a.device).expand(flat_batch, n, n).clone()
    eye_flat = torch.eye(n, dtype=a.dtype, device=a.device).reshape(1, n * n).expand(flat_batch, n * n)
    rounds = [(read.expand(flat_batch, -1), write.expand(flat_batch, -1)) for read, write in _rotation_indices(n, a.device)]
    half = n // 2
    floor = 1e-30 * EPS64 * torch.diagonal(work, dim1=-2, dim2=-1).abs().amax(-1, keepdim=True)
    for _ in range(sweeps):
        for read, write in rounds:
            app, aqq, apq = torch.gather(work.reshape(flat_batch, n * n), 1, read).split(half, dim=1)
            # negligible pairs (Demmel & Veselic's relative criterion) are not rotated: it would change only rounding
            rotate = apq.abs() > EPS64 * (app * aqq).abs().sqrt() + floor
            # tan of the rotation angle, the smaller root of t^2 + 2 theta t - 1 = 0 with theta = diff / (2 a_pq),
            # written without theta so that a_pq = 0 needs no guard (0/0 there is discarded by the where)
            diff = aqq - app
            two_apq = 2 * apq
            t = torch.where(diff < 0, -two_apq, two_apq) / (diff.abs() + torch.hypot(diff, two_apq))
            t = torch.where(rotate, t, torch.zeros_like(t))
            c = torch.rsqrt(1 + t * t)
            s = t * c
            rot = eye_flat.scatter(1, write, torch.cat([c, c, s, -s], dim=1)).reshape(flat_batch, n, n)
            work = rot.mT @ work @ rot
            vecs = vecs @ rot
    vals = torch.diagonal(work, dim1=-2, dim2=-1)[..., :k].reshape(*batch, k)
    return vals, vecs[..., :k, :k].reshape(*batch, k, k)


def pinv_apply(a: Tensor, b: Tensor, rtol: Optional[float] = None, sweeps: Optional[int] = None) -> Tensor:
    """``a^+ b`` for symmetric ``a`` [..., K, K] and ``b`` [..., K]; eigenvalues with ``|l| <= rtol max|l|`` count as 0.

    ``rtol`` defaults to ``K * eps`` (float64), the cut-off of ``torch.linalg.pinv``.
    """
    k = a.shape[-1]
    rtol = k * EPS64 if rtol is None else rtol
    vals, vecs = symmetric_eig(a, sweeps)
    cutoff = rtol * vals.abs().amax(-1, keepdim=True)
    keep = vals.abs() > cutoff
    inv = torch.where(keep, 1.0 / torch.where(keep, vals, torch.ones_like(vals)), torch.zeros_like(vals))
    coords = (vecs.mT @ b.unsqueeze(-1)).squeeze(-1)
    return (vecs @ (inv * coords).unsqueeze(-1)).squeeze(-1)
