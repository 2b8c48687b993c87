"""The Gram matrix ``G Gᵀ`` of each member of ``G[S, K, P]`` in Triton, float64, in one pass over ``G``.

``grad_gram_triton(G)`` computes what :func:`fastpinn.ops.reference.grad_gram_ref` defines: the ``[S, K, K]``
inner products of the per-term gradients that the gradient-conflict solvers (``fastpinn.aggregation``) read.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.library import triton_op, wrap_triton

from .launch import MAX_BLOCK, MAX_SPLITS, MIN_BLOCK, as_int, check_gradient_matrix, choose_splits, is_interpreted

__all__ = ["grad_gram_triton", "launch_grad_gram", "grad_gram_partial_kernel"]

# Grid (S members, n_splits). Program (s, j) loads BLOCK columns of all K rows of member s at a time (a
# [K_PAD, BLOCK] tile, converted to float64: a product of two float32 is exact in float64), adds the tile's
# K_PAD x K_PAD dot products (a tree sum over the BLOCK columns) to its accumulator, and writes its partial
# Gram to ws[s, j]. The partials are summed over j by torch in a fixed order: no atomics, bitwise reproducible
# for a fixed (block, splits). x_i . x_j and x_j . x_i are the same products summed in the same order, so the
# result is exactly symmetric. Error of an entry: about (log2 BLOCK + chunks per program + log2 splits) eps64
# sum_p |g_i g_j|.

_GRAM_TILE = 8192  # K_PAD * K_PAD * BLOCK products per step: the [K_PAD, K_PAD, BLOCK] broadcast in registers


@triton.jit
def grad_gram_partial_kernel(G, ws, K, P, sp, sk, spp, chunk_len, n_splits,
                             K_PAD: tl.constexpr, BLOCK: tl.constexpr):
    s = tl.program_id(0)
    j = tl.program_id(1)
    rows = tl.arange(0, K_PAD)
    cols = tl.arange(0, BLOCK)
    base = G + s.to(tl.int64) * sp + rows[:, None].to(tl.int64) * sk
    lo = j * chunk_len
    hi = tl.minimum(lo + chunk_len, P)
    acc = tl.zeros((K_PAD, K_PAD), dtype=tl.float64)
    for start in range(lo, hi, BLOCK):
        idx = start + cols
        m = (rows < K)[:, None] & (idx < hi)[None, :]
        x = tl.load(base + idx[None, :].to(tl.int64) * spp, mask=m, other=0.0).to(tl.float64)
        acc += tl.sum(x[:, None, :] * x[None, :, :], axis=2)
    out = ws + (s * n_splits + j).to(tl.int64) * (K_PAD * K_PAD) + rows[:, None] * K_PAD + rows[None, :]
    tl.store(out, acc)


def launch_grad_gram(G: Tensor, *, block: int | None = None, splits: int | None = None) -> Tensor:
    """``G[S, K, P]`` (float32/float64, any strides, CUDA or interpreted) -> ``gram[S, K, K]`` float64."""
    check_gradient_matrix(G)
    S, K, P = G.shape
    k_pad = max(2, triton.next_power_of_2(K))
    if block is None:
        block = max(MIN_BLOCK, min(1024, _GRAM_TILE // (k_pad * k_pad)))
    elif as_int(block) is None or not (MIN_BLOCK <= block <= MAX_BLOCK) or (block & (block - 1)):
        raise ValueError(f"block must be None or a power of two in [{MIN_BLOCK}, {MAX_BLOCK}], got {block!r}")
    out = torch.empty((S, K, K), dtype=torch.float64, device=G.device)
    if S == 0 or K == 0:
        return out
    if splits is None:
        splits = choose_splits(S, P, block, G.device, is_interpreted())
    splits = max(1, min(int(splits), triton.cdiv(P, block), MAX_SPLITS))
    chunk_len = triton.cdiv(triton.cdiv(P, splits), block) * block
    n_splits = triton.cdiv(P, chunk_len)
    ws = torch.empty((S, n_splits, k_pad, k_pad), dtype=torch.float64, device=G.device)
    sp, sk, spp = G.stride()
    wrap_triton(grad_gram_partial_kernel)[(S, n_splits)](
        G, ws, K, P, sp, sk, spp, chunk_len, n_splits, K_PAD=k_pad, BLOCK=block, num_warps=4)
    out.copy_(ws.sum(dim=1)[:, :K, :K])
    return out


@triton_op("fastpinn::grad_gram_triton", mutates_args=())
def _grad_gram_op(G: Tensor) -> Tensor:
    """The dispatcher op ``torch.ops.fastpinn.grad_gram_triton(G)`` (default block and splits)."""
    return launch_grad_gram(G)


@_grad_gram_op.register_fake
def _grad_gram_fake(G: Tensor) -> Tensor:
    """``G[S, K, P]`` -> a new ``[S, K, K]`` float64 tensor on ``G``'s device."""
    torch._check(G.dim() == 3, lambda: f"fastpinn::grad_gram_triton: G must be 3-D [S, K, P], got {tuple(G.shape)}")
    return G.new_empty((G.shape[0], G.shape[1], G.shape[1]), dtype=torch.float64)


def grad_gram_triton(G: Tensor, *, block: int | None = None, splits: int | None = None) -> Tensor:
    """The Gram matrices ``G Gᵀ`` of ``G[S, K, P]`` with Triton, ``[S, K, K]`` float64; see
    :func:`fastpinn.ops.reference.grad_gram_ref`. Explicit ``block``/``splits`` launch the kernel directly
    (tests, tuning); the defaults go through the dispatcher op ``fastpinn::grad_gram_triton``."""
    if block is None and splits is None:
        check_gradient_matrix(G)
        return torch.ops.fastpinn.grad_gram_triton(G)
    return launch_grad_gram(G, block=block, splits=splits)
